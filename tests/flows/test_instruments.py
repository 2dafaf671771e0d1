"""Instruments: locked wording, answers stored against instrument, version and question, the
annual survey, respondent groups' own wording, and schema 2 of the indicators export."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from flows.cycles.approve import approve_stage
from flows.cycles.launch import launch_cycle
from flows.people.answers import record_answers
from flows.reporting import by_question
from flows.settings import REPO_TEMPLATES, Settings
from flows.templates import Question, load_template
from flows.templates.instruments import load_instruments
from flows.templates.validation import validate_template
from store.errors import InvalidInput, TemplateError
from store.models import Participant, Response
from tests.conftest import read_maildir, tick

SF = REPO_TEMPLATES / "instruments" / "samverkan-sf.yaml"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    return root


def new_version(path: Path) -> None:
    """The instrument as version 2: its translations word version 1 and are refused beside
    it (tests/flows/test_languages.py), so they go until they are translated anew."""
    reword(path, "version: 1\n", "version: 2\n")
    shutil.rmtree(path.parent / "translations")


def reword(path: Path, old: str, new: str) -> None:
    content = path.read_text(encoding="utf-8")
    assert old in content
    path.write_text(content.replace(old, new), encoding="utf-8")


def test_the_bundled_instrument_is_locked_and_every_question_matches_its_fingerprint() -> None:
    inst = load_instruments(REPO_TEMPLATES, Question)["samverkan-sf"]
    assert (inst.version, inst.locked) == (1, True)
    assert "scale-now" in inst.questions
    assert [g.name for g in inst.groups] == ["service-users", "staff", "managers", "board"]
    assert inst.group_of("Göteborgs Stad", "politician") == "board"
    t = load_template(REPO_TEMPLATES / "learning-cycle")
    assert (t.questions["scale-now"].instrument, t.questions["scale-now"].instrument_version) == (
        "samverkan-sf",
        1,
    )


def test_a_locked_instrument_whose_wording_was_edited_is_refused(templates: Path) -> None:
    reword(
        templates / "instruments" / "samverkan-sf.yaml",
        "var befinner sig vårt samarbete just nu?",
        "hur bra är vårt samarbete just nu?",
    )
    with pytest.raises(TemplateError) as caught:
        load_template(templates / "learning-cycle")
    message = str(caught.value)
    assert "locked instrument samverkan-sf version 1" in message
    assert "question 'scale-now' changed" in message
    assert "\n" not in message
    # The command line says so in one line and exits 2, and every template that asks it fails.
    env = {"SAMVERKAN_TEMPLATES_DIR": str(templates), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "templates", "validate", "learning-cycle"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "question 'scale-now' changed" in run.stderr
    assert "Traceback" not in run.stderr
    # The fingerprint command names the changed question.
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "templates",
            "fingerprint",
            str(templates / "instruments" / "samverkan-sf.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    lines = dict(line.split(": ", 1) for line in shown.stdout.splitlines())
    assert "CHANGED" in lines["scale-now"]
    assert lines["what-is-better"].endswith("matches")


def test_a_new_wording_is_taken_only_as_a_new_version(templates: Path) -> None:
    path = templates / "instruments" / "samverkan-sf.yaml"
    load_template(templates / "learning-cycle")
    # Reworded, fingerprint rewritten, same version: the file loads...
    reword(path, "var befinner sig vårt samarbete just nu?", "hur bra är vårt samarbete nu?")
    from flows.templates.instruments import fingerprints

    now = {qid: fp for qid, fp, _ in fingerprints(path, Question)}
    reword(path, "fingerprint: 990566adeb49dd3b", f"fingerprint: {now['scale-now']}")
    assert (
        load_template(templates / "learning-cycle")
        .questions["scale-now"]
        .text["sv"]
        .startswith("På en skala från 0 till 10, hur bra")
    )


def test_an_instrument_reworded_under_the_same_version_is_refused_at_the_next_launch(
    network, settings: Settings, templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store remembers the wording each question had when first asked: rewriting the
    fingerprints with the wording does not get past it."""
    monkeypatch.setenv("SAMVERKAN_TEMPLATES_DIR", str(templates))
    settings = Settings()
    survey(network, settings, "Enkät 2027", datetime(2027, 3, 1, 8, tzinfo=UTC))
    path = templates / "instruments" / "samverkan-sf.yaml"
    reword(path, "var befinner sig vårt samarbete just nu?", "hur bra är vårt samarbete nu?")
    from flows.templates.instruments import fingerprints

    now = {qid: fp for qid, fp, _ in fingerprints(path, Question)}
    reword(path, "fingerprint: 990566adeb49dd3b", f"fingerprint: {now['scale-now']}")
    with pytest.raises(InvalidInput) as caught:
        survey(network, settings, "Enkät 2028", datetime(2028, 3, 1, 8, tzinfo=UTC))
    assert "instrument samverkan-sf version 1: question 'scale-now' is worded differently" in str(
        caught.value
    )
    # ...and as version 2 it is taken.
    new_version(path)
    survey(network, settings, "Enkät 2028", datetime(2028, 3, 1, 8, tzinfo=UTC))


def survey(engine, settings: Settings, name: str, start: datetime) -> int:  # type: ignore[no-untyped-def]
    cycle_id = launch_cycle(
        engine,
        settings,
        template="annual-survey",
        name=name,
        start=start.isoformat(),
        variables={"closes_at": (start + timedelta(days=30)).isoformat()},
    )
    approve_stage(engine, cycle_id=cycle_id, key="survey")
    return cycle_id


# Scale answers per person of the example network (13 people; see its participants.csv).
ANSWERS = {
    2027: {
        "anna.lindqvist": 6,
        "maria.sandberg": 7,
        "lars.ek": 5,
        "per.holm": 8,
        "tomas.wik": 6,
        "johan.berg": 4,
        "ali.hassan": 6,
        "mikael.oberg": 7,
        "sara.ahmadi": 3,
        "fatima.yusuf": 5,
        "olena.kovalenko": 6,
        "eva.nilsson": 8,
    },
    2028: {
        "anna.lindqvist": 7,
        "maria.sandberg": 8,
        "lars.ek": 6,
        "per.holm": 8,
        "johan.berg": 6,
        "ali.hassan": 7,
        "sara.ahmadi": 5,
        "fatima.yusuf": 6,
        "olena.kovalenko": 7,
        "eva.nilsson": 9,
        "karin.strom": 7,
    },
}


def answer(engine, settings: Settings, cycle_id: int, year: int) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        emails = {p.email.split("@")[0]: p.email for p in s.exec(select(Participant)).all()}
    for who, value in ANSWERS[year].items():
        record_answers(
            engine,
            settings,
            cycle_id=cycle_id,
            key="survey",
            email=emails[who],
            answers={"scale-now": value, "what-works": "Vi träffas."},
        )


def rows_of(export: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(export)))


def test_two_years_of_the_annual_survey_line_up_by_instrument_and_question(
    network, settings: Settings
) -> None:
    assert "annual-survey: valid: 4 stages" in validate_template(settings, "annual-survey")
    ids = []
    for year in (2027, 2028):
        start = datetime(year, 3, 1, 8, tzinfo=UTC)
        cycle_id = survey(network, settings, f"Årlig enkät {year}", start)
        tick(start + timedelta(minutes=1))
        answer(network, settings, cycle_id, year)
        ids.append(cycle_id)
    mail = read_maildir(Path(settings.mail_dir))
    # Everyone was asked, each year, in their own language, with the close date.
    sara = [m for m in mail["sara.ahmadi@goteborg.example"] if "survey" in m["Subject"]]
    assert len(sara) == 2
    assert "The survey closes on" in sara[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The answers are stored against the instrument, its version and the question.
    with Session(network) as s:
        stored = s.exec(select(Response).where(Response.question_id == "scale-now")).all()
        assert {(r.instrument, r.instrument_version) for r in stored} == {("samverkan-sf", 1)}
        assert len(stored) == len(ANSWERS[2027]) + len(ANSWERS[2028])
    rows = rows_of(
        by_question.export(
            network,
            load_instruments(REPO_TEMPLATES, Question),
            min_group=3,
            collaboration="Göteborg",
        )
    )
    assert {r["schema"] for r in rows} == {"samverkan.indicators/2"}
    means = {
        (r["year"], r["respondent_group"]): r
        for r in rows
        if r["question"] == "scale-now"
        and r["indicator"] == "scale_mean"
        and r["organisation"] == r["role"] == "*"
    }
    # The same question, the same instrument version, both years: they line up.
    assert {(r["instrument"], r["instrument_version"]) for r in means.values()} == {
        ("samverkan-sf", "1")
    }
    everyone_2027 = ANSWERS[2027].values()
    assert float(means[("2027", "*")]["value"]) == round(sum(everyone_2027) / 12, 3)
    assert float(means[("2028", "*")]["value"]) == round(sum(ANSWERS[2028].values()) / 11, 3)
    # Service users in 2027: 3, 5, 6, with the histogram that makes a combined median exact.
    assert (means[("2027", "service-users")]["value"], means[("2027", "service-users")]["n"]) == (
        "4.667",
        "3",
    )
    hist = {
        (r["year"], r["respondent_group"]): r["histogram"]
        for r in rows
        if r["question"] == "scale-now"
        and r["indicator"] == "scale_histogram"
        and r["organisation"] == r["role"] == "*"
    }
    assert hist[("2027", "service-users")] == "3:1 5:1 6:1"
    assert hist[("2027", "*")] == "3:1 4:1 5:2 6:4 7:2 8:2"
    # The board (two politicians) is too small to show. Staff are five people in five
    # organisation x role cells that the table hides: showing "5 asked" would tell that each
    # of those cells holds exactly one person, so they are hidden too.
    for group in ("board", "staff"):
        hidden = [r for r in rows if r["respondent_group"] == group and r["year"] == "2027"]
        assert hidden and all(r["suppressed"] == "True" and r["value"] == "" for r in hidden)
    # Response rate by respondent group.
    users = {
        r["indicator"]: r["value"]
        for r in rows
        if r["year"] == "2027" and r["respondent_group"] == "service-users" and r["question"] == "*"
    }
    assert users == {"asked": "3.0", "answered": "3.0", "response_rate": "1.0"}
    # Each year's figures still say which cycle they came from.
    assert {r["cycle_id"] for r in rows} == {str(i) for i in ids}


def test_a_respondent_group_is_asked_in_its_own_wording(
    network, settings: Settings, templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = templates / "instruments" / "samverkan-sf.yaml"
    reword(
        path,
        "  - id: scale-now\n",
        "  - id: scale-now\n"
        "    wording:\n"
        "      service-users:\n"
        "        sv: På en skala från 0 till 10, hur väl hjälper vi dig just nu?\n"
        "        en: On a scale from 0 to 10, how well are we helping you right now?\n",
    )
    from flows.templates.instruments import fingerprints

    now = {qid: fp for qid, fp, _ in fingerprints(path, Question)}
    reword(path, "fingerprint: 990566adeb49dd3b", f"fingerprint: {now['scale-now']}")
    new_version(path)
    monkeypatch.setenv("SAMVERKAN_TEMPLATES_DIR", str(templates))
    settings = Settings()
    start = datetime(2027, 3, 1, 8, tzinfo=UTC)
    survey(network, settings, "Enkät", start)
    tick(start + timedelta(minutes=1))
    mail = read_maildir(Path(settings.mail_dir))

    def body(address: str) -> str:
        return mail[address][0].get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert "how well are we helping you right now?" in body("sara.ahmadi@goteborg.example")
    assert "hur väl hjälper vi dig just nu?" in body("fatima.yusuf@example.org")
    professional = body("anna.lindqvist@forsakringskassan.example")
    assert "var befinner sig vårt samarbete just nu?" in professional
    assert "hjälper vi dig" not in professional


def test_the_store_keeps_the_wording_first_asked(network, settings: Settings) -> None:
    survey(network, settings, "Enkät", datetime(2027, 3, 1, 8, tzinfo=UTC))
    with network.connect() as conn:
        kept = dict(
            conn.execute(
                text(
                    "SELECT question_id, fingerprint FROM instrument_question "
                    "WHERE instrument = 'samverkan-sf' AND version = 1"
                )
            ).all()
        )
    assert kept["scale-now"] == "990566adeb49dd3b"
    assert set(kept) == {
        "scale-now",
        "what-works",
        "what-is-better",
        "difference-made",
        "one-step-up",
    }


def test_the_survey_report_shows_the_respondent_groups_as_the_export_does(
    network, settings: Settings
) -> None:
    from flows.reporting.report import build_report

    start = datetime(2027, 3, 1, 8, tzinfo=UTC)
    cycle_id = survey(network, settings, "Årlig enkät 2027", start)
    tick(start + timedelta(minutes=1))
    answer(network, settings, cycle_id, 2027)
    english = settings.model_copy(update={"coordinator_language": "en"})
    page = build_report(network, english, cycle_id, "md")
    assert "### By respondent group (Solution Focused follow-up, samverkan-sf v1)" in page
    table = page.split("### By respondent group")[1].split("\n\n")[1]
    rows = {
        cells[0]: cells[1:]
        for line in table.splitlines()[2:]
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    # Service users: 3 asked, 3 answered, answers 3, 5, 6. The rest are hidden, as in the
    # export (see above): the board for its size, staff and managers for the table's sake.
    assert rows["Service users"] == ["3", "3", "100%", "4.7", "5"]
    for group in ("Staff in the interventions", "Managers in the collaboration", "Board members"):
        assert rows[group][:3] == ["not shown"] * 3
    html = build_report(network, english, cycle_id, "html")
    assert "By respondent group (Solution Focused follow-up, samverkan-sf v1)" in html
