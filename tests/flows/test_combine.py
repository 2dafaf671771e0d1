"""Combining collaborations: three stores' schema 2 exports combined into figures checked by
hand, small groups that stay hidden after combining (tried as an attacker holding every
input and the combined view), a mixed-version input refused, and schema 1 read."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlmodel import Session

from flows.reporting import by_question
from flows.reporting.combine import combine
from flows.reporting.combine_report import to_html
from flows.reporting.indicators import export as export_v1
from flows.settings import REPO_TEMPLATES
from flows.templates import Question
from flows.templates.instruments import load_instruments
from store.db import open_store
from store.models import Cycle, Message, Organisation, Participant, Response, Stage

ROOT = Path(__file__).parents[2]
INSTRUMENTS = load_instruments(REPO_TEMPLATES, Question)
QUESTIONS = ["scale-now", "what-works"]

# One collaboration's people: (organisation, role, scale answer or None for no answer).
Person = tuple[str, str, int | None]

A: list[Person] = [
    *[("Kommun A", "service_user", v) for v in (2, 4, 6, 8, None)],
    *[("Kommun A", "professional", v) for v in (5, 5, 6)],
    *[("Kommun A", "manager", v) for v in (6, 7, 7)],
    *[("Kommun A", "politician", v) for v in (7, 9)],  # two board members: hidden
]
B: list[Person] = [
    *[("Region B", "service_user", v) for v in (3, 3, 7)],
    *[("Region B", "professional", v) for v in (6, 7, 8, 9)],
    *[("Region B", "manager", v) for v in (5, 6, 7)],
]
C: list[Person] = [
    *[("Stad C", "service_user", v) for v in (5, 6, 6, 9, 10, None)],
    *[("Stad C", "professional", v) for v in (4, 4, 5)],
    *[("Stad C", "manager", v) for v in (8, 8, 8)],
]


def build(
    path: Path,
    people: list[Person],
    year: int = 2027,
    *,
    version: int = 1,
    collaboration: str | None = None,
) -> str:
    """A collaboration's store with one annual survey, and its schema 2 export (CSV)."""
    engine = open_store(f"sqlite:///{path}")
    with Session(engine) as s:
        orgs = {n: Organisation(name=n) for n in sorted({p[0] for p in people})}
        s.add_all(orgs.values())
        s.flush()
        cycle = Cycle(
            name=f"Årlig enkät {year}",
            template="annual-survey",
            timezone="Europe/Stockholm",
            start_at=datetime(year, 3, 1, 8, tzinfo=UTC),
        )
        s.add(cycle)
        s.flush()
        bound = {q: ["samverkan-sf", version] for q in QUESTIONS}
        stage = Stage(
            cycle_id=cycle.id,
            key="survey",
            kind="followup",
            position=0,
            due_at=cycle.start_at,
            template="survey",
            status="done",
            config={"questions": QUESTIONS, "instruments": bound},
        )
        s.add(stage)
        s.flush()
        for i, (org, role, value) in enumerate(people):
            p = Participant(
                name=f"p{i}",
                email=f"p{i}@x.example",
                email_key=f"p{i}@x.example",
                organisation_id=orgs[org].id,
                role=role,
                language="sv",
            )
            s.add(p)
            s.flush()
            s.add(
                Message(
                    cycle_id=cycle.id,
                    stage_id=stage.id,
                    participant_id=p.id,
                    to_email=p.email,
                    to_key=p.email_key,
                    to_name=p.name,
                    category="followup",
                    subject="q",
                    text="q",
                    html="q",
                    status="sent",
                )
            )
            if value is not None:
                s.add(
                    Response(
                        cycle_id=cycle.id,
                        stage_id=stage.id,
                        participant_id=p.id,
                        question_id="scale-now",
                        instrument="samverkan-sf",
                        instrument_version=version,
                        scale_value=value,
                    )
                )
        s.commit()
    name = collaboration or path.stem
    out = by_question.export(engine, INSTRUMENTS, min_group=3, collaboration=name)
    engine.dispose()
    return out


def write(tmp_path: Path, name: str, people: list[Person], **kw: object) -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_text(build(tmp_path / f"{name}.db", people, **kw), encoding="utf-8")  # type: ignore[arg-type]
    return path


def figure(rows, question: str, group: str, year: int = 2027):  # type: ignore[no-untyped-def]
    found = [r for r in rows if (r.question, r.respondent_group, r.year) == (question, group, year)]
    assert len(found) == 1, (question, group, found)
    return found[0]


def test_three_collaborations_combine_into_the_figures_worked_out_by_hand(tmp_path: Path) -> None:
    files = [write(tmp_path, name, people) for name, people in (("a", A), ("b", B), ("c", C))]
    combiner, rows = combine(files, min_group=3)
    assert combiner.collaborations == {"a", "b", "c"}

    # Service users, every collaboration: A 2 4 6 8 (of 5 asked), B 3 3 7 (of 3), C 5 6 6 9
    # 10 (of 6). 12 answers, sum 69: mean 5.75; in order 2 3 3 4 5 6 | 6 6 7 8 9 10: median 6.
    users = figure(rows, "scale-now", "service-users")
    assert (users.n, users.mean, users.median, users.collaborations) == (12, 5.75, 6.0, 3)
    assert users.histogram == "2:1 3:2 4:1 5:1 6:3 7:1 8:1 9:1 10:1"
    asked = figure(rows, "*", "service-users")
    assert (asked.asked, asked.answered, asked.response_rate) == (14, 12, round(12 / 14, 3))

    # Managers: A hid its three (6 7 7), so that its two board members cannot be read off its
    # total; B 5 6 7 and C 8 8 8 remain: n 6, mean 7, in order 5 6 7 | 8 8 8: median 7.5.
    managers = figure(rows, "scale-now", "managers")
    assert (managers.n, managers.mean, managers.median) == (6, 7.0, 7.5)
    assert (managers.collaborations, managers.suppressed_at_source) == (2, 1)

    # Everyone, each collaboration's published total: A 13 asked, 12 answered; B 10, 10;
    # C 12, 11.
    everyone = figure(rows, "*", "*")
    assert (everyone.asked, everyone.answered) == (13 + 10 + 12, 12 + 10 + 11)
    assert everyone.response_rate == round(33 / 35, 3)
    assert everyone.collaborations == 3

    # The board exists only in A, with two members: A suppressed it, so nothing of it is
    # combined, and the combined view says one collaboration was left out.
    board = figure(rows, "scale-now", "board")
    assert (board.n, board.mean, board.collaborations, board.suppressed_at_source) == (
        None,
        None,
        0,
        1,
    )


def test_nothing_a_collaboration_hid_can_be_worked_out_after_combining(tmp_path: Path) -> None:
    """Two worlds that differ only in what A's board members answered, with the answers moved
    to A's hidden cells so that A publishes the same export: every combined output is the
    same byte for byte, so nothing in it (with every input beside it) tells the two apart."""
    world_a = [p for p in A if p[1] != "politician"] + [
        ("Kommun A", "politician", 7),
        ("Kommun A", "politician", 9),
    ]
    # A hides its managers as well as its board (so that the board's figures cannot be read
    # off A's total): move a 9 from the board to a manager and that manager's 6 to the board.
    managers = [p for p in A if p[1] == "manager"]
    world_b = (
        [p for p in A if p[1] not in ("politician", "manager")]
        + [("Kommun A", "manager", 9), *managers[1:]]
        + [("Kommun A", "politician", 7), ("Kommun A", "politician", 6)]
    )
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.mkdir()
    two.mkdir()
    a1 = write(one, "a", world_a)
    a2 = write(two, "a", world_b)
    if a1.read_text() != a2.read_text():
        pytest.fail("A's export differs between the worlds: the test's worlds are wrong")
    others = [write(tmp_path, "b", B), write(tmp_path, "c", C)]
    for fmt in ("csv", "html"):
        outputs = []
        for a in (a1, a2):
            combiner, rows = combine([a, *others], min_group=3)
            outputs.append(
                to_html(combiner, rows, min_group=3)
                if fmt == "html"
                else __import__("flows.reporting.combine", fromlist=["to_csv"]).to_csv(rows)
            )
        assert outputs[0] == outputs[1]


Cell3 = tuple[str, str, str]  # collaboration, organisation, role
GROUPS = INSTRUMENTS["samverkan-sf"]


def _members(cells: list[Cell3], group: str, org: str, role: str) -> list[Cell3]:
    if group != "*":
        return [c for c in cells if GROUPS.group_of(c[1], c[2]) == group]
    return [c for c in cells if org in ("*", c[1]) and role in ("*", c[2])]


def _figures(r: dict[str, str]) -> dict[str, float] | None:
    """The figures a published row gives: a count, or a scale's n and count of each value."""
    name = r["indicator"]
    if name in ("asked", "answered"):
        return {name: float(r["value"])}
    if name == "scale_histogram":
        h = by_question.parse_histogram(r["histogram"])
        return {"n": float(r["n"]), **{f"value {v}": float(h.get(v, 0)) for v in range(11)}}
    return None


def recoverable(files: list[Path], combined: list | None = None) -> list[str]:  # type: ignore[type-arg]
    """What an attacker holding these exports (and the combined view) works out exactly.

    Every published figure is an equation over the unknown organisation x role cells of each
    collaboration (people asked, answering, scale answers, and how many gave each value); a
    hidden figure is worked out when its row lies in the span of the published ones, solved
    numerically here (numpy's rank), independently of the exact method the export uses."""
    cells: list[Cell3] = []
    published: list[tuple[list[Cell3], str]] = []
    hidden: list[tuple[list[Cell3], str, str]] = []
    shown_by: dict[tuple[str, str, str], set[str]] = {}
    for f in files:
        rows = list(csv.DictReader(io.StringIO(f.read_text())))
        mine = sorted(
            {
                (f.stem, r["organisation"], r["role"])
                for r in rows
                if "*" not in (r["organisation"], r["role"])
            }
        )
        cells += mine
        for r in rows:
            if r["question"] not in ("*", "scale-now"):
                continue
            if r["indicator"] not in ("asked", "answered", "scale_histogram"):
                continue
            who = _members(mine, r["respondent_group"], r["organisation"], r["role"])
            label = f"{f.stem}: {r['respondent_group']}/{r['organisation']}/{r['role']}"
            if r["suppressed"] == "True":
                kinds = (
                    ["n", *(f"value {v}" for v in range(11))]
                    if r["indicator"] == "scale_histogram"
                    else [r["indicator"]]
                )
                hidden += [(who, kind, label) for kind in kinds]
                continue
            published += [(who, kind) for kind in _figures(r) or {}]
            if r["organisation"] == r["role"] == "*":
                shown_by.setdefault(
                    (r["question"], r["respondent_group"], r["indicator"]), set()
                ).add(f.stem)
    # The combined view: each figure is the sum of that group's cells over the collaborations
    # that published it (the attacker, holding the inputs, knows which did).
    for c in combined or []:
        if c.suppressed or c.question not in ("*", "scale-now"):
            continue
        for indicator, kinds in (
            ("asked", ["asked"]),
            ("answered", ["answered"]),
            ("scale_histogram", ["n", *(f"value {v}" for v in range(11))]),
        ):
            who = shown_by.get((c.question, c.respondent_group, indicator), set())
            part = [
                cell for cell in _members(cells, c.respondent_group, "*", "*") if cell[0] in who
            ]
            if part:
                published += [(part, kind) for kind in kinds]
    index = {cell: i for i, cell in enumerate(cells)}

    def vector(members: list[Cell3]) -> np.ndarray:
        v = np.zeros(len(cells))
        for cell in members:
            v[index[cell]] = 1
        return v

    found = []
    for kind in {k for _, k, _ in hidden}:
        rows_p = [vector(m) for m, k in published if k == kind]
        matrix = np.array(rows_p) if rows_p else np.zeros((0, len(cells)))
        rank = np.linalg.matrix_rank(matrix) if rows_p else 0
        for members_h, k, label in hidden:
            stacked = np.vstack([matrix, vector(members_h)])
            if k == kind and members_h and np.linalg.matrix_rank(stacked) == rank:
                found.append(f"{kind} of {label}")
    return sorted(set(found))


def test_the_attack_finds_what_an_unprotected_export_gives_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack is not blind: with respondent groups only hidden for their own size, A's
    managers (hidden in the table beside the board) are read off the managers' group."""
    from flows.reporting import groups

    monkeypatch.setattr(groups, "protect_groups", lambda **kw: set(kw["small"]))
    found = recoverable([write(tmp_path, "a", A)])
    assert "asked of a: */*/manager" in found


def test_an_attacker_holding_every_input_and_the_combined_view_finds_no_hidden_value(
    tmp_path: Path,
) -> None:
    files = [write(tmp_path, name, people) for name, people in (("a", A), ("b", B), ("c", C))]
    _, combined = combine(files, min_group=3)
    assert any(r["suppressed"] == "True" for r in csv.DictReader(io.StringIO(files[0].read_text())))
    assert recoverable(files, combined) == []


person = st.tuples(
    st.sampled_from(["Org 1", "Org 2", "Org 3"]),
    st.sampled_from(["service_user", "professional", "manager", "politician", "facilitator"]),
    st.one_of(st.none(), st.integers(0, 10)),
)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=st.lists(person, min_size=1, max_size=30))
# Nobody answered. The managers' group is the hidden managers' column: hiding the service
# users' group (fewest people) instead would close nothing, and it is the shown column anyway.
@example(
    people=[
        *[("Org 1", "service_user", None)] * 3,
        ("Org 1", "professional", None),
        *[("Org 1", "manager", None)] * 2,
        *[("Org 2", "manager", None)] * 2,
    ]
)
def test_no_hidden_figure_of_a_random_network_can_be_worked_out(
    tmp_path_factory: pytest.TempPathFactory, people: list[Person]
) -> None:
    """Random networks of three organisations and every role, one export each: no hidden
    figure of the organisation x role table or of a respondent group is worked out."""
    folder = tmp_path_factory.mktemp("random")
    assert recoverable([write(folder, "x", people)]) == []


def test_versions_of_one_question_are_not_combined(tmp_path: Path) -> None:
    first = write(tmp_path, "a", A, version=1)
    second = write(tmp_path, "b", B, version=2)
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "indicators", "combine", str(first), str(second)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "question 'scale-now' of instrument samverkan-sf is version 2" in run.stderr
    assert str(second) in run.stderr and str(first) in run.stderr
    assert run.stdout == ""


def test_a_file_that_is_not_an_export_is_refused_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "indicators", "combine", str(junk)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (run.returncode, run.stderr.count("\n")) == (2, 1)
    assert "not an indicators export" in run.stderr


def test_schema_1_exports_combine_their_counts_and_means(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for name, people in (("a", A), ("b", B)):
        build(tmp_path / f"{name}.db", people)
        engine = open_store(f"sqlite:///{tmp_path / f'{name}.db'}")
        path = tmp_path / f"{name}.json"
        path.write_text(export_v1(engine, fmt="json"), encoding="utf-8")
        engine.dispose()
        paths.append(path)
    _, rows = combine(paths, min_group=3)
    everyone = figure(rows, "*", "*")
    assert (everyone.asked, everyone.answered) == (13 + 10, 12 + 10)
    scale = figure(rows, "(scale)", "*")
    # All of A's and B's answers: 12 with sum 72, and 10 with sum 61.
    assert (scale.n, scale.mean) == (22, round((72 + 61) / 22, 3))
    assert scale.median is None  # schema 1 has no histograms: no exact median, and none shown
    assert json.loads(json.dumps(rows[0].__dict__))  # plain values


def test_the_command_writes_csv_json_and_a_page(tmp_path: Path) -> None:
    files = [str(write(tmp_path, n, p)) for n, p in (("a", A), ("b", B), ("c", C))]
    for fmt in ("csv", "json", "html"):
        run = subprocess.run(
            [sys.executable, "-m", "flows.cli", "indicators", "combine", *files, "--format", fmt],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert run.returncode == 0, run.stderr
        if fmt == "csv":
            header = run.stdout.splitlines()[0]
            assert header.startswith("schema,instrument,instrument_version,question")
        elif fmt == "json":
            assert json.loads(run.stdout)[0]["schema"] == "samverkan.combined/1"
        else:
            assert run.stdout.startswith("<!DOCTYPE html>")
            assert "Question scale-now" in run.stdout
            assert "http" not in run.stdout.replace("http://www.w3.org", "")


def later(people: list[Person], step: int) -> list[Person]:
    """The same people a year on, each answer ``step`` higher (at most 10)."""
    return [(o, r, None if v is None else min(10, v + step)) for o, r, v in people]


def two_years(tmp_path: Path) -> list[Path]:
    files = []
    for name, people in (("a", A), ("b", B), ("c", C)):
        files.append(write(tmp_path, f"{name}-2027", people, collaboration=name))
        files.append(
            write(tmp_path, f"{name}-2028", later(people, 1), year=2028, collaboration=name)
        )
    return files


def test_the_trend_per_year_is_the_change_of_the_combined_mean(tmp_path: Path) -> None:
    combiner, rows = combine(two_years(tmp_path), min_group=3)
    assert combiner.collaborations == {"a", "b", "c"}  # six files, three collaborations
    first, second = (
        figure(rows, "scale-now", "service-users", 2027),
        figure(rows, "scale-now", "service-users", 2028),
    )
    # A year on, every service user answered one higher except C's 10, which stays 10.
    assert second.mean == round((69 + 12 - 1) / 12, 3)
    assert second.change == round(second.mean - first.mean, 3)
    assert first.change is None
