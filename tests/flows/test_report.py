"""The reflection report, on the two-cycle network of test_indicators."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from flows.reporting.report import build_report
from store.models import AuditEntry, Organisation, Participant, Response, Stage
from tests.conftest import asked


def test_html_report_has_the_plan_the_people_the_numbers_and_the_words(
    engine, settings, two_cycles
):
    _, c2 = two_cycles
    with Session(engine) as s:
        s.add(
            AuditEntry(
                cycle_id=c2,
                action="stage.skip",
                stage_key="reminder",
                detail="skip reminder in cycle 2 (plan version 3 -> 4); change: ...",
                reason="everyone had answered",
            )
        )
        s.add(
            Response(
                cycle_id=c2,
                stage_id=1,
                participant_id=1,
                question_id="what-works",
                text="<script>alert(1)</script> Att vi ses.",
            )
        )
        s.commit()
    page = build_report(engine, settings, c2, "html")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="sv" dir="ltr">' in page
    assert "<h2>Vad vi gjorde</h2>" in page and '<th scope="row">followup</th>' in page
    # The change in the report's language, not the audit log's English line.
    assert "<li>" in page and "Steget reminder hoppades över (skäl: everyone had answered)" in page
    assert "skip reminder in cycle 2" not in page
    assert (
        '<th scope="row">Alla</th><td>5</td><td>5</td><td>100\xa0%</td>'
        "<td>7,2</td><td>7</td><td>+1,4</td>" in page  # numbers as Swedish writes them
    )
    assert "<td>visas inte</td>" in page  # small groups hidden
    assert page.count("<svg") == 2  # the distribution and the trend over the two cycles
    assert 'aria-label="Svar på skalan (5: 1, 7: 2, 8: 1, 9: 1)"' in page
    assert "<h2>Med deras egna ord</h2>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Att vi ses." in page and "<script>" not in page


def test_voices_we_did_not_hear_are_named(engine, settings, two_cycles):
    c1, _ = two_cycles
    english = settings.model_copy(update={"coordinator_language": "en"})
    page = build_report(engine, english, c1, "md")
    # The one elected member's silence is not named: that would publish the group's count.
    assert "Every organisation and role large enough to be shown was heard." in page
    assert "| Everyone | 8 | 6 | 75% | 5.8 | 5.5 | – |" in page
    assert "<svg" not in page
    assert "| B | 4 | 3 | 75% | 5.3 | 4 | – |" in page


def test_the_words_are_anonymous(engine, settings, two_cycles):
    _, c2 = two_cycles
    page = build_report(engine, settings, c2, "md")
    with Session(engine) as s:
        assert s.exec(select(Response)).first() is not None
    for name in ("p1@x.example", "p5@x.example"):
        assert name not in page


def test_a_silent_group_large_enough_to_be_shown_is_named(engine, settings, two_cycles):
    c1, _ = two_cycles
    with Session(engine) as s:
        org = Organisation(name="C")
        s.add(org)
        s.flush()
        stage = s.exec(select(Stage).where(Stage.cycle_id == c1)).one()
        for i in range(3):
            p = Participant(
                name=f"c{i}",
                email=f"c{i}@x.example",
                email_key=f"c{i}@x.example",
                organisation_id=org.id,
                role="professional",
                language="sv",
            )
            s.add(p)
            s.flush()
            asked(s, stage, p)
        s.commit()
    english = settings.model_copy(update={"coordinator_language": "en"})
    page = build_report(engine, english, c1, "md")
    assert "Voices we did not hear this time: C." in page
    assert "| C | 3 | 0 | 0% | – | – | – |" in page


def add_workshop(engine, cycle_id: int) -> None:  # type: ignore[no-untyped-def]
    """A workshop whose invite went out on 15 November, for a meeting on 10 February."""
    with Session(engine) as s:
        s.add(
            Stage(
                cycle_id=cycle_id,
                key="workshop",
                kind="meeting",
                position=-1,
                due_at=datetime(2026, 11, 15, 8, 0, tzinfo=UTC),
                ran_at=datetime(2026, 11, 15, 8, 0, 5, tzinfo=UTC),
                template="workshop",
                status="done",
                config={"starts_at": "2027-02-10T09:00:00+01:00", "duration_minutes": 120},
            )
        )
        when = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
        s.add(
            AuditEntry(cycle_id=cycle_id, at=when, action="stage.reschedule", stage_key="workshop")
        )
        s.add(AuditEntry(cycle_id=cycle_id, at=when, action="cycle.add-participants"))
        s.commit()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "sv",
            [
                "| workshop | möte | 2027-02-10 09:00 | klart | 0 |",
                "| followup | uppföljningsfrågor | 2027-06-01 02:00 | klart | 5 |",
                "Steget workshop fick en ny tid",
                "Deltagare lades till i cykeln",
            ],
        ),
        (
            "en",
            [
                "| Stage | Kind | When | Status | Sent |",
                "| workshop | meeting | 2027-02-10 09:00 | done | 0 |",
                "| followup | follow-up questions | 2027-06-01 02:00 | done | 5 |",
                "Rescheduled the stage workshop",
                "Added participants to the cycle",
            ],
        ),
    ],
)
def test_the_plan_is_told_in_the_reports_language_with_the_workshops_own_date(
    engine, settings, two_cycles, language: str, expected: list[str]
):
    _, c2 = two_cycles
    add_workshop(engine, c2)
    chosen = settings.model_copy(update={"coordinator_language": language})
    page = build_report(engine, chosen, c2, "md")
    for line in expected:
        assert line in page, line
    assert "2026-11-15" not in page  # when the invite went out is not the workshop's date
    assert "stage.reschedule" not in page and "cycle.add-participants" not in page


def test_the_html_report_is_one_main_landmark_with_plain_svg_charts(engine, settings, two_cycles):
    _, c2 = two_cycles
    page = build_report(engine, settings, c2, "html")
    body = page.split("<body>", 1)[1]
    assert body.startswith("<main>") and body.endswith("</main></body></html>\n")
    assert "<metadata" not in page and "rdf:" not in page and "dc:" not in page
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(charts) == 2
    # The distribution's count axis (the y axis) is labelled in whole numbers: 0, 1, 2.
    ticks = re.findall(r'ytick_\d+">.*?<text[^>]*>([^<]*)</text>', charts[0], re.S)
    assert ticks and all(re.fullmatch(r"[0-9]+", t) for t in ticks), ticks
    # Ids are unique in the page, although both charts come from the same library.
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_how_many_a_stage_reached_is_not_shown_for_part_of_the_network(
    engine, settings, two_cycles
):
    c1, _ = two_cycles
    with Session(engine) as s:
        manager = s.exec(select(Participant).where(Participant.role == "manager")).one()
        stage = Stage(
            cycle_id=c1,
            key="managers",
            kind="email",
            position=5,
            due_at=datetime(2027, 1, 2, tzinfo=UTC),
            template="progress-note",
            status="done",
            audience="role=manager",
        )
        s.add(stage)
        s.flush()
        asked(s, stage, manager, category="email")
        s.commit()
    page = build_report(engine, settings, c1, "md")
    assert "| managers | e-post | 2027-01-02 01:00 | klart | visas inte |" in page  # one manager
    assert "| followup | uppföljningsfrågor | 2027-01-01 01:00 | klart | 8 |" in page
    tighter = settings.model_copy(update={"min_group": 9})  # fewer asked than that in all
    page = build_report(engine, tighter, c1, "md")
    assert "| followup | uppföljningsfrågor | 2027-01-01 01:00 | klart | visas inte |" in page


def test_every_stage_status_has_an_english_name() -> None:
    from flows.reporting.report import STAGE_STATUSES
    from store.models import StageStatus

    missing = [s.value for s in StageStatus if s.value not in STAGE_STATUSES]
    assert missing == []
    assert len(set(STAGE_STATUSES.values())) == len(StageStatus)  # each its own name


@pytest.mark.parametrize("language", ["sv", "fi", "ar"])
def test_every_stage_status_is_named_in_the_reports_language(language: str) -> None:
    from flows.reporting.report import STAGE_STATUSES
    from messaging import i18n
    from store.models import StageStatus

    untranslated = [
        s.value
        for s in StageStatus
        if i18n.tr(language, STAGE_STATUSES[s.value]) == STAGE_STATUSES[s.value]
    ]
    assert untranslated == []
