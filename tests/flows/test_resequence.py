"""Adapting a running cycle, walked with tick(now) through real Prefect flows.

Each test asserts what participants receive in their mailboxes, not only the stored rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import vobject
from icalendar import Calendar

from flows.cycles.overview import cycle_overview
from flows.cycles.plan import PlanError
from flows.cycles.resequence import (
    add_participants,
    add_stage,
    cancel_stage,
    edit_stage,
    move_stage,
    reschedule_stage,
    set_cycle_status,
    skip_stage,
)
from flows.people.inbox import import_replies
from flows.people.participants import import_participants
from store.errors import InvalidInput, StateError
from store.models import CycleStatus
from tests.conftest import launch_learning_cycle, read_maildir, tick

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
EVERYONE = 13
POLITICIANS = {"eva.nilsson@goteborg.example", "karin.strom@vgregion.example"}


class Mail:
    """What has landed in the participants' Maildirs, and what is new since last asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, int] = {}

    def new(self) -> dict[str, list[EmailMessage]]:
        fresh = {}
        for box, msgs in read_maildir(self.root).items():
            if len(msgs) > self.seen.get(box, 0):
                fresh[box] = msgs[self.seen.get(box, 0) :]
            self.seen[box] = len(msgs)
        return fresh


def calendar_of(msg: EmailMessage) -> tuple[Calendar, str]:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    ics = part.get_content()  # type: ignore[attr-defined]
    assert part.get_param("method") == Calendar.from_ical(ics)["METHOD"]
    return Calendar.from_ical(ics), ics


def plan_view(engine: Any, cycle_id: int) -> dict[str, tuple[str, str, str]]:
    """Every stage as `samverkan cycle show` prints it: due time, timing and status."""
    return {
        s["key"]: (s["due"], s["timing"], s["status"])
        for s in cycle_overview(engine, cycle_id=cycle_id)["stages"]
    }


def both_ways(op: Callable[..., Any], engine: Any, settings: Any, **kw: Any) -> list[str]:
    """Run an operation as a dry run, then for real; both must report the same effects, and
    every stage the real run changed must be named in a change line of the preview."""
    before = plan_view(engine, kw["cycle_id"])
    preview = op(engine, settings, dry_run=True, **kw)
    assert plan_view(engine, kw["cycle_id"]) == before  # a dry run changes nothing
    done = op(engine, settings, **kw)
    assert preview.lines() == done.lines()
    after = plan_view(engine, kw["cycle_id"])
    named = {
        word.strip(":,")
        for line in preview.lines()
        if line.startswith("  change: ")
        for word in line.split()
    }
    changed = {key for key in after if before.get(key) != after[key]}
    assert changed <= named, f"changed without a word in the preview: {changed - named}"
    return done.lines()


@pytest.fixture
def announced(network, settings):  # type: ignore[no-untyped-def]
    """A cycle whose invitation and workshop invite have gone to everyone."""
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, location="Stadshuset")
    mail = Mail(Path(settings.mail_dir))
    assert tick(START).delivery.sent == 2 * EVERYONE
    mail.new()
    return cycle_id, mail


def test_rescheduling_an_announced_workshop_updates_every_calendar(network, settings, announced):
    cycle_id, mail = announced
    [original] = {
        str(calendar_of(m[1])[0].walk("VEVENT")[0]["UID"])
        for m in read_maildir(Path(settings.mail_dir)).values()
    }
    moved = WORKSHOP + timedelta(days=7)
    lines = both_ways(
        reschedule_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="workshop",
        at=moved.isoformat(),
        reason="the board meets that day",
    )
    assert "  change: workshop starts 2027-02-10 09:00 -> 2027-02-17 09:00" in lines
    assert (
        "  change: workshop-reminder due 2027-02-08 09:00 -> 2027-02-15 09:00 (2d before workshop)"
        in lines
    )
    assert any("13 calendar updates for workshop (same UID, SEQUENCE 1)" in line for line in lines)

    tick(START + timedelta(hours=1))
    updates = mail.new()
    assert len(updates) == EVERYONE and all(len(m) == 1 for m in updates.values())
    for box, [msg] in updates.items():
        cal, ics = calendar_of(msg)
        [event] = cal.walk("VEVENT")
        assert (cal["METHOD"], str(event["UID"]), int(event["SEQUENCE"])) == (
            "REQUEST",
            original,
            1,
        )
        assert event.decoded("dtstart") == moved
        assert str(event["ATTENDEE"]).lower() == f"mailto:{box}"
        second = vobject.readOne(ics).vevent  # an independent parser agrees
        assert (second.uid.value, int(second.sequence.value)) == (original, 1)
        assert second.dtstart.value == moved
    note = updates["sara.ahmadi@goteborg.example"][0]
    text = note.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Before: Wednesday 10 February 2027 at 09:00" in text
    assert "Now: Wednesday 17 February 2027 at 09:00" in text

    # The reminder followed the workshop: nothing at the old time, all of it at the new one.
    tick(WORKSHOP - timedelta(days=2))
    assert mail.new() == {}
    tick(moved - timedelta(days=2))
    assert len(mail.new()) == EVERYONE


def test_cancelling_an_announced_workshop_cancels_its_reminder_and_holds_what_follows(
    network, settings, announced
):
    cycle_id, mail = announced
    lines = both_ways(cancel_stage, network, settings, cycle_id=cycle_id, key="workshop")
    assert "  change: workshop: done -> cancelled" in lines
    assert "  change: workshop-reminder: pending -> cancelled" in lines
    tick(START + timedelta(hours=1))
    cancels = mail.new()
    assert len(cancels) == EVERYONE
    for [msg] in cancels.values():
        cal, ics = calendar_of(msg)
        [event] = cal.walk("VEVENT")
        assert cal["METHOD"] == "CANCEL"
        assert str(event["STATUS"]) == "CANCELLED" and int(event["SEQUENCE"]) == 1
        assert vobject.readOne(ics).vevent.status.value == "CANCELLED"
    # What follows the workshop is held, not run as if it had taken place, and the preview
    # names each of those stages.
    for key in ("followup", "followup-reminder", "reflection"):
        assert (
            f"  change: {key}: pending -> held (it follows the cancelled workshop; "
            "reschedule or move it to run it, or skip it)"
        ) in lines
    tick(WORKSHOP - timedelta(days=2))
    assert mail.new() == {}  # no reminder for a cancelled workshop
    report = tick(WORKSHOP + timedelta(days=16))
    assert mail.new() == {}  # no follow-up about a workshop that did not happen
    assert report.completed == []  # the held stages wait for the coordinator
    overview = cycle_overview(network, cycle_id=cycle_id)
    assert overview["status"] == "running"
    assert {s["key"]: s["status"] for s in overview["stages"]} == {
        "invitation": "done",
        "workshop": "cancelled",
        "workshop-reminder": "cancelled",
        "followup": "held",
        "followup-reminder": "held",
        "reflection": "held",
    }
    # Given a time of its own, the follow-up runs, and so does the reminder that follows it.
    lines = both_ways(
        reschedule_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="followup",
        at=(WORKSHOP + timedelta(days=21)).isoformat(),
    )
    assert "  change: followup: held -> pending" in lines
    assert "  change: followup-reminder: held -> pending" in lines
    assert not any("reflection" in line for line in lines)
    tick(WORKSHOP + timedelta(days=21))
    assert len(mail.new()) == EVERYONE
    tick(WORKSHOP + timedelta(days=26))
    assert len(mail.new()) == EVERYONE
    with pytest.raises(PlanError, match="cannot reschedule 'workshop': it is cancelled"):
        reschedule_stage(
            network,
            settings,
            cycle_id=cycle_id,
            key="workshop",
            at=(WORKSHOP + timedelta(days=30)).isoformat(),
        )
    both_ways(skip_stage, network, settings, cycle_id=cycle_id, key="reflection")
    assert tick(WORKSHOP + timedelta(days=27)).completed == [cycle_id]


def test_a_second_workshop_after_the_follow_up(network, settings, announced):
    cycle_id, mail = announced
    second = datetime(2027, 3, 10, 13, 0, tzinfo=TZ)
    lines = both_ways(
        add_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="second-workshop",
        kind="meeting",
        after="followup",
        offset="1d",
        starts=second.isoformat(),
        duration="3h",
        location="Regionens hus",
    )
    assert (
        "  change: add second-workshop (meeting), due 2027-02-18 09:00, 1d after followup" in lines
    )
    tick(WORKSHOP + timedelta(days=7))
    assert len(mail.new()) == EVERYONE  # the follow-up
    tick(WORKSHOP + timedelta(days=8))
    invites = mail.new()
    assert len(invites) == EVERYONE
    uids = set()
    for [msg] in invites.values():
        [event] = calendar_of(msg)[0].walk("VEVENT")
        uids.add(str(event["UID"]))
        assert event.decoded("dtstart") == second
        assert str(event["LOCATION"]) == "Regionens hus"
    [uid] = uids
    first = {
        str(calendar_of(m[1])[0].walk("VEVENT")[0]["UID"])
        for m in read_maildir(Path(settings.mail_dir)).values()
    }
    assert uid not in first  # a meeting of its own


def test_skip_move_and_an_email_for_politicians_only(network, settings, announced):
    cycle_id, mail = announced
    both_ways(
        skip_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="workshop-reminder",
        reason="everyone has answered",
    )
    lines = both_ways(
        move_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="followup-reminder",
        after="reflection",
    )
    assert (
        "  change: followup-reminder due 2027-02-22 09:00 -> 2027-03-01 09:00 (5d after reflection)"
        in lines
    )
    both_ways(
        add_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="politicians",
        kind="email",
        template="progress-note",
        audience="role=politician",
        after="workshop",
        offset="1d",
    )

    tick(WORKSHOP - timedelta(days=2))
    assert mail.new() == {}  # the reminder was skipped
    tick(WORKSHOP + timedelta(days=1))
    notes = mail.new()
    assert set(notes) == POLITICIANS
    [note] = notes["eva.nilsson@goteborg.example"]
    assert note["Subject"] == "Så går det i Vår 2027"
    tick(WORKSHOP + timedelta(days=12))  # the follow-up reminder's old time
    got = mail.new()
    assert set(got) == set(read_maildir(Path(settings.mail_dir))) - {
        "coordinator@coordination.example"
    }
    assert all(m[0]["Subject"].startswith(("Vad har", "What is")) for m in got.values())
    tick(WORKSHOP + timedelta(days=14))
    assert set(mail.new()) == {"coordinator@coordination.example"}  # reflection first
    tick(WORKSHOP + timedelta(days=19))
    assert len(mail.new()) == EVERYONE  # then the moved reminder


def test_a_late_joiner_catches_up_with_the_current_invite(network, settings, announced, tmp_path):
    cycle_id, mail = announced
    reschedule_stage(
        network,
        settings,
        cycle_id=cycle_id,
        key="workshop",
        at=(WORKSHOP + timedelta(days=1)).isoformat(),
    )
    tick(START + timedelta(hours=1))
    mail.new()
    late = tmp_path / "late.csv"
    late.write_text(
        "name,email,organisation,role,language\n"
        "Nora Late,nora.late@kommun.example,Kommunen,professional,en\n"
    )
    import_participants(network, late)
    lines = both_ways(
        add_participants, network, settings, cycle_id=cycle_id, emails=["Nora.Late@kommun.example"]
    )
    assert any("catch-up: 1 message of invitation" in line for line in lines)
    tick(START + timedelta(hours=2))
    got = mail.new()
    assert list(got) == ["nora.late@kommun.example"]
    invitation, invite = got["nora.late@kommun.example"]
    assert invitation["Subject"] == "Welcome to Vår 2027"
    [event] = calendar_of(invite)[0].walk("VEVENT")
    assert int(event["SEQUENCE"]) == 1  # the current version of the meeting
    assert event.decoded("dtstart") == WORKSHOP + timedelta(days=1)
    assert cycle_overview(network, cycle_id=cycle_id)["participants"] == EVERYONE + 1
    again = add_participants(
        network, settings, cycle_id=cycle_id, emails=["nora.late@kommun.example"]
    )
    assert "  change: 1 person already in the cycle" in again.lines()


def reply(uid: str, email: str, partstat: str, sequence: int = 0) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mail client//EN\r\nMETHOD:REPLY\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nSEQUENCE:{sequence}\r\nDTSTAMP:20270121T080000Z\r\n"
        f"ATTENDEE;PARTSTAT={partstat};CN=Someone:mailto:{email}\r\n"
        "ORGANIZER:mailto:samverkan@coordination.example\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_calendar_replies_decide_who_gets_the_reminder(network, settings, announced, tmp_path):
    _, mail = announced
    any_invite = read_maildir(Path(settings.mail_dir))["anna.lindqvist@forsakringskassan.example"][
        1
    ]
    uid = str(calendar_of(any_invite)[0].walk("VEVENT")[0]["UID"])
    inbox = tmp_path / "replies"
    inbox.mkdir()
    (inbox / "anna.ics").write_text(
        reply(uid, "ANNA.LINDQVIST@forsakringskassan.example", "ACCEPTED")
    )
    (inbox / "per.ics").write_text(reply(uid, "per.holm@vgregion.example", "TENTATIVE"))
    # An email from Outlook, with the reply as its calendar part.
    from email.message import EmailMessage as Mime

    msg = Mime()
    msg["Subject"] = "Accepted: Workshop"
    msg.set_content("Accepted")
    msg.add_alternative(
        reply(uid, "eva.nilsson@goteborg.example", "ACCEPTED"),
        subtype="calendar",
        params={"method": "REPLY"},
    )
    (inbox / "eva.eml").write_bytes(bytes(msg))
    (inbox / "stranger.ics").write_text(reply(uid, "stranger@elsewhere.example", "ACCEPTED"))
    (inbox / "unknown.ics").write_text(reply("no-such-uid", "lars.ek@goteborg.example", "ACCEPTED"))
    report = import_replies(network, inbox)
    assert len(report.recorded) == 3
    assert any("stranger@elsewhere.example was not invited" in p for p in report.problems)
    assert any("unknown meeting UID no-such-uid" in p for p in report.problems)

    tick(WORKSHOP - timedelta(days=2))
    reminded = set(mail.new())
    assert len(reminded) == EVERYONE - 2
    assert {
        "anna.lindqvist@forsakringskassan.example",
        "eva.nilsson@goteborg.example",
    } & reminded == set()
    assert "per.holm@vgregion.example" in reminded  # tentative is not a yes


def test_a_reply_to_an_out_of_date_invite_is_not_recorded(network, settings, announced, tmp_path):
    cycle_id, _ = announced
    any_invite = read_maildir(Path(settings.mail_dir))["lars.ek@goteborg.example"][1]
    uid = str(calendar_of(any_invite)[0].walk("VEVENT")[0]["UID"])
    reschedule_stage(
        network,
        settings,
        cycle_id=cycle_id,
        key="workshop",
        at=(WORKSHOP + timedelta(days=1)).isoformat(),
    )
    path = tmp_path / "old.ics"
    path.write_text(reply(uid, "lars.ek@goteborg.example", "ACCEPTED", sequence=0))
    report = import_replies(network, path)
    assert report.recorded == []
    assert report.problems == [
        "old.ics: lars.ek@goteborg.example answered an out-of-date "
        "invitation (SEQUENCE 0, current 1)"
    ]


def test_what_has_run_cannot_be_changed(network, settings, announced):
    cycle_id, _ = announced
    with pytest.raises(PlanError, match="cannot skip 'invitation': it is done"):
        skip_stage(network, settings, cycle_id=cycle_id, key="invitation")
    with pytest.raises(PlanError, match="cannot move 'workshop': it is done"):
        move_stage(network, settings, cycle_id=cycle_id, key="workshop", after="followup")
    with pytest.raises(PlanError, match="cannot edit 'invitation': it is done"):
        edit_stage(network, settings, cycle_id=cycle_id, key="invitation", audience="role=manager")
    with pytest.raises(PlanError, match="in a circle"):
        move_stage(network, settings, cycle_id=cycle_id, key="followup", after="followup-reminder")
    with pytest.raises(InvalidInput, match="is in the past"):
        reschedule_stage(
            network, settings, cycle_id=cycle_id, key="workshop", at="2020-01-01T09:00"
        )


def test_a_stale_plan_is_refused_and_concurrent_edits_are_all_kept(network, settings, announced):
    cycle_id, _ = announced
    preview = skip_stage(
        network, settings, cycle_id=cycle_id, key="workshop-reminder", dry_run=True
    )
    seen = preview.version[0]
    edit_stage(network, settings, cycle_id=cycle_id, key="followup", audience="role=manager")
    with pytest.raises(StateError, match="changed since you looked at it"):
        skip_stage(
            network, settings, cycle_id=cycle_id, key="workshop-reminder", expect_version=seen
        )

    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(op: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            op()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ops = [
        lambda: skip_stage(network, settings, cycle_id=cycle_id, key="workshop-reminder"),
        lambda: add_stage(
            network,
            settings,
            cycle_id=cycle_id,
            key="note",
            kind="email",
            template="progress-note",
            after="workshop",
            offset="1d",
        ),
    ]
    threads = [threading.Thread(target=run, args=(op,)) for op in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stages = {s["key"]: s for s in cycle_overview(network, cycle_id=cycle_id)["stages"]}
    assert stages["workshop-reminder"]["status"] == "skipped"
    assert "note" in stages and stages["followup"]["audience"] == "role=manager"


def test_pause_resume_and_cancel_a_cycle(network, settings, announced):
    cycle_id, mail = announced
    set_cycle_status(network, settings, cycle_id=cycle_id, to=CycleStatus.paused)
    tick(WORKSHOP - timedelta(days=2))
    assert mail.new() == {}  # nothing runs while paused
    set_cycle_status(network, settings, cycle_id=cycle_id, to=CycleStatus.running)
    tick(WORKSHOP - timedelta(days=2))
    assert len(mail.new()) == EVERYONE  # the reminder, now
    lines = both_ways(
        set_cycle_status, network, settings, cycle_id=cycle_id, to=CycleStatus.cancelled
    )
    assert "  change: followup: pending -> cancelled" in lines
    tick(WORKSHOP - timedelta(days=1))
    cancels = mail.new()
    assert len(cancels) == EVERYONE
    assert all(calendar_of(m[0])[0]["METHOD"] == "CANCEL" for m in cancels.values())
    tick(WORKSHOP + timedelta(days=30))
    assert mail.new() == {}


def test_skipping_the_last_stages_completes_the_cycle_once_its_workshop_began(
    network, settings, announced
):
    cycle_id, _ = announced
    for key in ("workshop-reminder", "followup", "followup-reminder", "reflection"):
        skip_stage(network, settings, cycle_id=cycle_id, key=key)
    report = tick(START + timedelta(hours=1))  # nothing is left to run, but the workshop is
    assert report.stages == [] and report.completed == []  # still ahead: it can still move
    report = tick(WORKSHOP + timedelta(minutes=1))
    assert report.stages == [] and report.completed == [cycle_id]
    assert cycle_overview(network, cycle_id=cycle_id)["status"] == "completed"


def test_a_cycle_with_a_meeting_still_ahead_is_not_completed(network, settings, announced):
    cycle_id, mail = announced
    second = WORKSHOP + timedelta(days=30)  # after the reflection
    add_stage(
        network,
        settings,
        cycle_id=cycle_id,
        key="second-workshop",
        kind="meeting",
        after="workshop",
        offset="1d",
        starts=second.isoformat(),
    )
    report = tick(WORKSHOP + timedelta(days=14))  # every stage has run, the reflection too
    assert [s.key for _, s in report.stages][-1] == "reflection"
    assert report.completed == []
    assert cycle_overview(network, cycle_id=cycle_id)["status"] == "running"
    mail.new()
    moved = second + timedelta(days=7)
    lines = both_ways(
        reschedule_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="second-workshop",
        at=moved.isoformat(),
    )
    assert any("13 calendar updates for second-workshop" in line for line in lines)
    tick(WORKSHOP + timedelta(days=15))
    updates = mail.new()
    assert len(updates) == EVERYONE
    assert all(
        calendar_of(m[0])[0].walk("VEVENT")[0].decoded("dtstart") == moved for m in updates.values()
    )
    assert tick(moved - timedelta(hours=1)).completed == []
    assert tick(moved + timedelta(minutes=1)).completed == [cycle_id]
    assert cycle_overview(network, cycle_id=cycle_id)["status"] == "completed"
    lines = both_ways(
        add_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="thanks",
        kind="email",
        template="progress-note",
        after="second-workshop",
        offset="1d",
    )
    assert f"  change: cycle {cycle_id}: completed -> running" in lines
    assert cycle_overview(network, cycle_id=cycle_id)["status"] == "running"


def test_a_reminder_that_ran_keeps_its_record_when_the_workshop_moves(network, settings, announced):
    cycle_id, mail = announced
    tick(WORKSHOP - timedelta(days=2))
    assert len(mail.new()) == EVERYONE  # the reminder ran
    ran = plan_view(network, cycle_id)["workshop-reminder"]
    lines = both_ways(
        reschedule_stage,
        network,
        settings,
        cycle_id=cycle_id,
        key="workshop",
        at=(WORKSHOP + timedelta(days=7)).isoformat(),
    )
    assert not any("workshop-reminder" in line for line in lines)
    assert plan_view(network, cycle_id)["workshop-reminder"] == ran
    assert ran[0].startswith("2027-02-08T09:00")
    assert (
        "  change: followup due 2027-02-17 09:00 -> 2027-02-24 09:00 (7d after workshop)" in lines
    )
