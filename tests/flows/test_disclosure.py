"""Small groups stay hidden against arithmetic: an attacker holding the indicator export (and
the report, which shows nothing the export does not) tries to work out a suppressed value.

The attacker knows what a reader of the export knows: every published value and `n`, that a
group listed with no scale rows gave no scale answers, and that every margin adds up
(organisation x role cells add up to their organisation and to their role, organisations and
roles add up to the total). Each margin is an equation; subtracting the visible cells from a
margin total is the one-unknown case, and solving all of them together (exact fractions) is
every combination of margins at once. This is done for the counts (asked, answered, with
answered also read off the response rate) and for the scale (number of answers, and their
sum = mean x n), within each cycle, and across cycles through `scale_change` (the change and
one cycle's mean give the other's). A hidden value that can be worked out is a failure.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlmodel import Session
from typer.testing import CliRunner

from flows.cli import app
from flows.reporting.indicators import compute, to_csv, to_json
from flows.reporting.report import build_report
from store.models import Cycle, Message, Organisation, Participant, Response, Stage
from tests.conftest import answered, asked, followup_ran

ALL = "*"
COUNTS = ("asked", "answered")
# "gap" is 10 x n - sum: how far the answers fall short of all being 10 (never negative).
SCALE = ("n_scale", "sum", "gap")

Cell = tuple[str, str]  # organisation, role


def parse(export_csv: str) -> dict[tuple[int, Cell, str], dict[str, str]]:
    rows = {}
    for r in csv.DictReader(io.StringIO(export_csv)):
        rows[(int(r["cycle_id"]), (r["organisation"], r["role"]), r["indicator"])] = r
    return rows


def _num(text: str) -> Fraction | None:
    return Fraction(text) if text not in ("", None) else None


FLOORS = {"asked": 1, "answered": 0, "n_scale": 0, "sum": 0, "gap": 0}


def _relations(cells: list[Cell]) -> list[tuple[list[Cell], Cell]]:
    """Every margin as (the cells that add up to it, the margin)."""
    present = set(cells)
    found = []
    for org in sorted({c[0] for c in cells if c[0] != ALL}):
        found.append(([c for c in cells if c[0] == org and c[1] != ALL], (org, ALL)))
    for role in sorted({c[1] for c in cells if c[1] != ALL}):
        found.append(([c for c in cells if c[1] == role and c[0] != ALL], (ALL, role)))
    found.append(([c for c in cells if c[0] != ALL and c[1] == ALL], (ALL, ALL)))
    found.append(([c for c in cells if c[0] == ALL and c[1] != ALL], (ALL, ALL)))
    return [(parts, whole) for parts, whole in found if whole in present]


def _solve(cells: list[Cell], known: dict[Cell, Fraction]) -> dict[Cell, Fraction]:
    """Every unknown cell that the margin equations pin down, with its value."""
    unknown = [c for c in cells if c not in known]
    if not unknown:
        return {}
    index = {c: i for i, c in enumerate(unknown)}
    present = set(cells)
    equations: list[tuple[dict[Cell, int], Cell]] = []
    for org in {c[0] for c in cells if c[0] != ALL}:
        parts = {c: 1 for c in cells if c[0] == org and c[1] != ALL}
        equations.append((parts, (org, ALL)))
    for role in {c[1] for c in cells if c[1] != ALL}:
        parts = {c: 1 for c in cells if c[1] == role and c[0] != ALL}
        equations.append((parts, (ALL, role)))
    equations.append(({c: 1 for c in cells if c[0] != ALL and c[1] == ALL}, (ALL, ALL)))
    equations.append(({c: 1 for c in cells if c[0] == ALL and c[1] != ALL}, (ALL, ALL)))
    matrix: list[list[Fraction]] = []
    for parts, margin in equations:
        if margin not in present:
            continue
        terms = {**parts, margin: -1}
        row = [Fraction(0)] * (len(unknown) + 1)
        for cell, sign in terms.items():
            if cell in index:
                row[index[cell]] += sign
            else:
                row[-1] -= sign * known.get(cell, Fraction(0))
        matrix.append(row)
    # Reduced row echelon form: a row with a single unknown left gives that unknown exactly.
    pivot_row = 0
    width = len(unknown)
    for column in range(width):
        pick = next((r for r in range(pivot_row, len(matrix)) if matrix[r][column]), None)
        if pick is None:
            continue
        matrix[pivot_row], matrix[pick] = matrix[pick], matrix[pivot_row]
        lead = matrix[pivot_row][column]
        matrix[pivot_row] = [x / lead for x in matrix[pivot_row]]
        for r in range(len(matrix)):
            if r != pivot_row and matrix[r][column]:
                factor = matrix[r][column]
                matrix[r] = [
                    a - factor * b for a, b in zip(matrix[r], matrix[pivot_row], strict=True)
                ]
        pivot_row += 1
    found = {}
    for row in matrix:
        nonzero = [i for i in range(width) if row[i]]
        if len(nonzero) == 1:
            found[unknown[nonzero[0]]] = row[-1] / row[nonzero[0]]
    return found


def attack(export_csv: str) -> list[str]:
    """The hidden values that can be worked out of the export; empty when none can."""
    rows = parse(export_csv)
    cycles = sorted({k[0] for k in rows})
    listed: dict[int, set[Cell]] = defaultdict(set)
    for cycle_id, cell, _ in rows:
        listed[cycle_id].add(cell)
    know: dict[tuple[int, str], dict[Cell, Fraction]] = defaultdict(dict)
    mean: dict[int, dict[Cell, Fraction]] = defaultdict(dict)
    hidden: dict[tuple[int, str], set[Cell]] = defaultdict(set)

    for (cycle_id, cell, indicator), r in rows.items():
        value, n = _num(r["value"]), _num(r["n"])
        if r["suppressed"] == "True":
            family = COUNTS if indicator in ("asked", "answered", "response_rate") else ()
            if indicator in ("scale_mean", "scale_median"):
                family = (*SCALE, "mean")
            for q in family:
                hidden[(cycle_id, q)].add(cell)
        if indicator in ("asked", "answered", "response_rate") and n is not None:
            know[(cycle_id, "asked")][cell] = n
        if indicator in ("asked", "answered") and value is not None:
            know[(cycle_id, indicator)][cell] = value
        if indicator in ("scale_mean", "scale_median") and n is not None:
            know[(cycle_id, "n_scale")][cell] = n
        if indicator == "scale_mean" and value is not None:
            mean[cycle_id][cell] = value
    for cycle_id in cycles:
        for cell in listed[cycle_id]:
            if not any((cycle_id, cell, i) in rows for i in ("scale_mean", "scale_median")):
                know[(cycle_id, "n_scale")][cell] = Fraction(0)  # listed, no scale answers

    changed = True
    while changed:
        changed = False

        def learn(cycle_id: int, q: str, cell: Cell, value: Fraction) -> None:
            nonlocal changed
            if cell not in know[(cycle_id, q)]:
                know[(cycle_id, q)][cell] = value
                changed = True

        for cycle_id in cycles:
            k = lambda q: know[(cycle_id, q)]  # noqa: B023, E731
            for cell in listed[cycle_id]:
                rate = _num(rows.get((cycle_id, cell, "response_rate"), {}).get("value", ""))
                if rate is not None and cell in k("asked"):
                    learn(cycle_id, "answered", cell, Fraction(round(rate * k("asked")[cell])))
                if k("answered").get(cell) == 0:  # nobody answered: no scale answers either
                    learn(cycle_id, "n_scale", cell, Fraction(0))
                    learn(cycle_id, "sum", cell, Fraction(0))
                n = k("n_scale").get(cell)
                if n is not None and cell in mean[cycle_id]:
                    learn(cycle_id, "sum", cell, Fraction(round(mean[cycle_id][cell] * n)))
                if n is not None and cell in k("sum"):
                    learn(cycle_id, "gap", cell, 10 * n - k("sum")[cell])
                if n and cell in k("sum") and cell not in mean[cycle_id]:
                    mean[cycle_id][cell] = k("sum")[cell] / n
                    changed = True
            for q in (*COUNTS, *SCALE):
                for cell, value in _solve(sorted(listed[cycle_id]), k(q)).items():
                    learn(cycle_id, q, cell, value)
                # Bounds: a listed group has someone asked, and nothing is negative. When
                # what a margin leaves for its hidden cells is just their least, each is that.
                floor = Fraction(FLOORS[q])
                for parts, whole in _relations(sorted(listed[cycle_id])):
                    if whole not in k(q):
                        continue
                    unknown = [c for c in parts if c not in k(q)]
                    rest = k(q)[whole] - sum(k(q)[c] for c in parts if c in k(q))
                    if unknown and rest == floor * len(unknown):
                        for cell in unknown:
                            learn(cycle_id, q, cell, floor)
        for before, after in itertools.pairwise(cycles):
            for cell in listed[after]:
                change = _num(rows.get((after, cell, "scale_change"), {}).get("value", ""))
                if change is None:
                    continue
                for a, b, sign in ((after, before, 1), (before, after, -1)):
                    if cell in mean[b] and cell not in mean[a]:
                        mean[a][cell] = mean[b][cell] + sign * change
                        changed = True

    leaks = []
    for (cycle_id, q), cells in hidden.items():
        source = mean[cycle_id] if q == "mean" else know[(cycle_id, q)]
        for cell in sorted(cells):
            if cell in source:
                leaks.append(f"cycle {cycle_id} {cell[0]} x {cell[1]}: {q} = {source[cell]}")
    return leaks


def test_the_attack_finds_what_a_careless_export_gives_away() -> None:
    """The attacker is not blind: one hidden cell beside its visible margin is found."""
    export = (
        "schema,cycle_id,cycle_name,cycle_start,organisation,role,indicator,value,n,suppressed\n"
        "s,1,c,d,A,manager,asked,,,True\n"
        "s,1,c,d,A,professional,asked,3,3,False\n"
        "s,1,c,d,A,*,asked,4,4,False\n"
        "s,1,c,d,*,manager,asked,,,True\n"
        "s,1,c,d,*,professional,asked,3,3,False\n"
        "s,1,c,d,*,*,asked,4,4,False\n"
    )
    assert attack(export) == [
        "cycle 1 * x manager: asked = 1",
        "cycle 1 A x manager: asked = 1",
    ]


def test_no_hidden_value_can_be_worked_out_of_the_export(settings, engine, two_cycles) -> None:
    result = CliRunner().invoke(app, ["indicators", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert attack(result.output) == []
    rows = list(csv.DictReader(io.StringIO(result.output)))
    hidden = [r for r in rows if r["suppressed"] == "True"]
    assert hidden and all(r["value"] == "" and r["n"] == "" for r in hidden)
    published = json.loads(CliRunner().invoke(app, ["indicators", "--format", "json"]).output)
    assert all(r["n"] is None and r["value"] is None for r in published if r["suppressed"])
    # The whole network is still shown.
    c1, _ = two_cycles
    assert {
        (r["indicator"], r["value"])
        for r in rows
        if r["cycle_id"] == str(c1) and r["organisation"] == r["role"] == ALL
    } >= {("asked", "8.0"), ("answered", "6.0")}


def test_one_cycle_alone_gives_away_nothing_the_other_hides(settings, engine, two_cycles) -> None:
    """Exported one cycle at a time, and together, the figures must agree cell for cell."""
    c1, c2 = two_cycles
    apart = {
        k: (r["value"], r["n"], r["suppressed"])
        for cycle_id in (c1, c2)
        for k, r in parse(to_csv(compute(engine, cycle_ids=[cycle_id]).rows())).items()
    }
    together = {
        k: (r["value"], r["n"], r["suppressed"])
        for k, r in parse(to_csv(compute(engine).rows())).items()
    }
    assert apart == together


def report_cells(page: str, labels: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """The group tables of a Markdown report: {(level, group name): cells}."""
    found = {}
    level = None
    for line in page.splitlines():
        if line.startswith("### "):
            level = line[4:]
        elif (
            line.startswith("| ")
            and level in labels
            and not line.startswith("| " + labels["group"])
        ):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            found[(level, cells[0])] = cells[1:]
    return found


def test_the_report_shows_no_number_the_export_hides(settings, engine, two_cycles) -> None:
    from flows.reporting.report import LABELS
    from flows.stages.base import ROLE_LABELS

    english = settings.model_copy(update={"coordinator_language": "en"})
    lab = LABELS  # the English message ids are the English labels
    levels = {lab["indicators"]: "all", lab["by_role"]: "role", lab["by_org"]: "org"}
    for cycle_id in two_cycles:
        rows = parse(to_csv(compute(engine).rows()))
        page = build_report(engine, english, cycle_id, "md")
        cells = report_cells(page, {**levels, "group": lab["group"]})
        names = {v: k for k, v in ROLE_LABELS.items()}
        checked = 0
        for (level_title, name), shown in cells.items():
            level = levels[level_title]
            cell = (
                (ALL, ALL)
                if level == "all"
                else (ALL, names[name])
                if level == "role"
                else (name, ALL)
            )
            for indicator, text in zip(
                ("asked", "answered", "response_rate", "scale_mean"), shown[:4], strict=True
            ):
                row = rows.get((cycle_id, cell, indicator))
                if row and row["suppressed"] == "True":
                    assert text == "not shown", (cycle_id, cell, indicator, text)
                elif row:
                    assert text != "not shown" and text != "–", (cycle_id, cell, indicator)
                checked += 1
        assert checked >= 20
        # A group is named as unheard only where the export shows it asked and silent.
        unheard = re.search(r"Voices we did not hear this time: (.*)\.", page)
        for name in unheard.group(1).split(", ") if unheard else []:
            cell = (ALL, names[name]) if name in names else (name, ALL)
            assert rows[(cycle_id, cell, "answered")]["value"] == "0.0", (cycle_id, name)


# Random networks ---------------------------------------------------------------------------

ROLES = ("service_user", "professional", "manager", "politician")
# Per cycle: not asked (None), asked and silent (-1), or asked and answered on the scale.
answer = st.sampled_from([None, -1, -1, 0, 3, 5, 7, 10])
person = st.tuples(
    st.sampled_from("ABC"), st.sampled_from(ROLES), st.lists(answer, min_size=2, max_size=2)
)


def build(engine, people: list[tuple[str, str, list[int | None]]]) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        for table in (Response, Message, Stage, Cycle, Participant, Organisation):
            s.execute(delete(table))
        orgs = {n: Organisation(name=n) for n in sorted({p[0] for p in people})}
        s.add_all(orgs.values())
        s.flush()
        members = []
        for i, (org, role, _) in enumerate(people):
            members.append(
                Participant(
                    name=f"p{i}",
                    email=f"p{i}@x.example",
                    email_key=f"p{i}@x.example",
                    organisation_id=orgs[org].id,
                    role=role,
                    language="sv",
                )
            )
        s.add_all(members)
        s.flush()
        for n in range(2):
            stage = followup_ran(
                s, f"C{n}", datetime(2027, 1 + 5 * n, 1, tzinfo=UTC), timezone="UTC"
            )
            for p, (_, _, answers) in zip(members, people, strict=True):
                if answers[n] is None:
                    continue
                asked(s, stage, p)
                if answers[n] >= 0:
                    answered(s, stage, p, "scale-now", scale=answers[n])
        s.commit()


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=st.lists(person, min_size=1, max_size=40), min_group=st.integers(2, 5))
# A group that is seen to be silent (C) has no scale answers to hide: hidden as a complement
# for the one elected member, its "hidden" empty mean would protect nothing.
@example(
    people=[
        *[("A", "professional", [5, 5])] * 2,
        ("A", "manager", [4, 4]),
        *[("B", "service_user", [3, 3])] * 3,
        ("B", "politician", [-1, -1]),
        *[("C", "professional", [-1, -1])] * 3,
    ],
    min_group=3,
)
# Everyone in B answered 10: B's total and its service users' mean leave the elected member
# nothing but 10 as well.
@example(
    people=[
        *[("A", "professional", [5, 6])] * 3,
        *[("B", "service_user", [10, 10])] * 3,
        ("B", "politician", [10, 10]),
        *[("B", "manager", [10, 10])] * 3,
    ],
    min_group=3,
)
# One manager and one elected member, and no others anywhere: what organisation A's total
# leaves beside its professionals is 2, so both would be 1 (each group has someone in it).
@example(
    people=[
        *[("A", "professional", [5, 6])] * 3,
        ("A", "manager", [4, 4]),
        ("A", "politician", [7, 7]),
        *[("B", "service_user", [3, 3])] * 3,
    ],
    min_group=3,
)
# A's scale n (10) is a floor under A's hidden counts: with the total asked (11) it would
# leave B's one person as the only possible size, had A's scale figures been shown.
@example(
    people=[
        *[("A", "professional", [5, 5])] * 10,
        ("B", "professional", [-1, -1]),
        *[("C", "professional", [6, 6])] * 5,
        *[("C", "professional", [-1, -1])] * 15,
    ],
    min_group=3,
)
def test_no_hidden_value_can_be_worked_out_of_a_random_network(
    engine, people: list[tuple[str, str, list[int | None]]], min_group: int
) -> None:
    build(engine, people)
    figures = compute(engine, min_group=min_group)
    export = to_csv(figures.rows())
    assert attack(export) == []
    rows = json.loads(to_json(figures.rows()))
    for r in rows:
        if r["suppressed"]:
            assert r["n"] is None and r["value"] is None
        else:
            assert r["n"] >= min_group
    # A group whose counts are hidden shows no scale n either: it would bound those counts.
    counts_hidden = {
        (r["cycle_id"], r["organisation"], r["role"])
        for r in rows
        if r["indicator"] == "asked" and r["suppressed"]
    }
    for r in rows:
        if r["indicator"].startswith("scale_") and r["n"] is not None:
            assert (r["cycle_id"], r["organisation"], r["role"]) not in counts_hidden, r


def test_the_reflection_email_and_its_report_hide_a_network_below_the_minimum(
    network, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from tests.conftest import launch_learning_cycle, read_maildir, tick

    monkeypatch.setenv("SAMVERKAN_MIN_GROUP", "20")  # the 13 participants are too few
    tz = ZoneInfo("Europe/Stockholm")
    start = datetime(2027, 1, 20, 9, 0, tzinfo=tz)
    workshop = datetime(2027, 2, 10, 9, 0, tzinfo=tz)
    launch_learning_cycle(network, settings, start, workshop)
    tick(start)
    tick(workshop + timedelta(days=7))  # the follow-up questions go out
    tick(workshop + timedelta(days=14))
    [mail] = read_maildir(Path(settings.mail_dir))["coordinator@coordination.example"]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Färre än 20 personer bjöds in, så hur många som kom visas inte" in text
    assert "Uppföljningsfrågorna: färre än 20 personer tillfrågades" in text
    assert "Inbjudna" not in text and "Tackade ja" not in text and "Svarade på" not in text
    [report] = [p for p in mail.iter_attachments() if p.get_filename().startswith("reflection")]
    page = report.get_content()
    assert '<th scope="row">Alla</th><td>visas inte</td><td>visas inte</td>' in page
    assert re.search(r"<td>\d+</td>", page.split("<h2>Vilka var med</h2>")[1]) is None
