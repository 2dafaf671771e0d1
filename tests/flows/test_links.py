"""Personal links are one per participant, stage and purpose: every meeting's invite, update
and catch-up carries the RSVP link of that meeting, and the page it opens is that meeting's."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from flows.cycles.resequence import add_participants, add_stage, reschedule_stage
from flows.people.participants import import_participants
from flows.web.app import create_app
from store.models import Meeting, MeetingAttendee, Participant, Stage
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.flows.test_web import Pages

TZ = ZoneInfo("Europe/Stockholm")
START = datetime.now(TZ).replace(second=0, microsecond=0) + timedelta(days=2)
WORKSHOP = START + timedelta(days=21)
SECOND = WORKSHOP + timedelta(days=14)
SARA = "sara.ahmadi@goteborg.example"
LATE = "lena.berg@arbetsformedlingen.example"


def invites(mail_dir: Path, who: str) -> list[tuple[str, str, str]]:
    """(calendar summary's location, SEQUENCE, RSVP path) of every calendar mail to ``who``."""
    found = []
    for msg in read_maildir(mail_dir)[who]:
        cal = _calendar(msg)
        if cal is None:
            continue
        [event] = cal.walk("VEVENT")
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        paths = re.findall(r"http://127\.0\.0\.1:8000(/r/[A-Za-z0-9_-]+)", text)
        assert len(set(paths)) == 1, f"one RSVP link per meeting mail, found {paths}"
        found.append((str(event["LOCATION"]), str(event["SEQUENCE"]), paths[0]))
    return found


def _calendar(msg: EmailMessage) -> Calendar | None:
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            return Calendar.from_ical(part.get_content())  # type: ignore[attr-defined]
    return None


@pytest.fixture
def two_meetings(network, settings):  # type: ignore[no-untyped-def]
    """The learning cycle, its workshop announced, and a second meeting added and announced."""
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, location="Stadshuset")
    tick(START)
    add_stage(
        network,
        settings,
        cycle_id=cycle_id,
        kind="meeting",
        key="second-workshop",
        at=(START + timedelta(days=1)).isoformat(),
        starts=SECOND.isoformat(),
        duration="3h",
        location="Regionens hus",
    )
    tick(START + timedelta(days=1))
    return cycle_id


def test_a_second_meeting_has_its_own_rsvp_link(network, settings, two_meetings) -> None:
    mail = Path(settings.mail_dir)
    [(loc1, _, first), (loc2, _, second)] = invites(mail, SARA)
    assert (loc1, loc2) == ("Stadshuset", "Regionens hus")
    assert first != second

    pages = Pages(create_app(settings, network))
    page = pages.get(second)
    assert page.status_code == 200 and "Regionens hus" in page.text
    assert "Stadshuset" not in page.text
    assert pages.post(second, data={"answer": "ACCEPTED"}).status_code == 303
    with Session(network) as s:
        stats = {
            stage_key: partstat
            for stage_key, partstat in s.exec(
                select(Stage.key, MeetingAttendee.partstat)
                .join(Meeting, Meeting.stage_id == Stage.id)  # type: ignore[arg-type]
                .join(MeetingAttendee, MeetingAttendee.meeting_id == Meeting.id)  # type: ignore[arg-type]
                .join(Participant, Participant.id == MeetingAttendee.participant_id)  # type: ignore[arg-type]
                .where(Participant.email_key == SARA)
            )
        }
    assert stats == {"workshop": "NEEDS-ACTION", "second-workshop": "ACCEPTED"}


def test_an_update_of_the_second_meeting_carries_its_link(network, settings, two_meetings):
    reschedule_stage(
        network,
        settings,
        cycle_id=two_meetings,
        key="second-workshop",
        at=(SECOND + timedelta(days=1)).isoformat(),
    )
    tick(START + timedelta(days=1, minutes=5))
    [(_, _, first), (_, _, second), (loc, seq, update)] = invites(Path(settings.mail_dir), SARA)
    assert (loc, seq) == ("Regionens hus", "1")
    assert update == second != first


def test_a_late_joiner_gets_each_meetings_own_link(network, settings, two_meetings, tmp_path):
    people = tmp_path / "late.csv"
    people.write_text(
        "name,email,organisation,role,language\n"
        f"Lena Berg,{LATE},Arbetsförmedlingen,professional,sv\n",
        encoding="utf-8",
    )
    import_participants(network, people)
    add_participants(network, settings, cycle_id=two_meetings, emails=[LATE])
    tick(START + timedelta(days=1, minutes=5))
    got = invites(Path(settings.mail_dir), LATE)
    assert sorted(loc for loc, _, _ in got) == ["Regionens hus", "Stadshuset"]
    assert len({path for _, _, path in got}) == 2
    pages = Pages(create_app(settings, network))
    for loc, _, path in got:
        page = pages.get(path)
        assert page.status_code == 200 and loc in page.text
