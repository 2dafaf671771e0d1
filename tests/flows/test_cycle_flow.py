"""A whole learning cycle walked with tick(now) through real Prefect flows.

Each test asserts what participants actually receive (Maildir or a real SMTP server), not
only the rows in the store.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import vobject
from icalendar import Calendar
from sqlmodel import Session, select

from flows.cycles.approve import approve_stage
from flows.cycles.launch import launch_cycle
from flows.cycles.overview import cycle_overview
from flows.people.answers import record_answers, record_rsvp
from flows.templates import template_of
from store.models import Cycle, Message, Stage, pk
from tests.conftest import launch_learning_cycle, read_maildir
from tests.conftest import prefect_tick as tick
from tests.smtpd import RecordingSMTP

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
EVERYONE = 13
ACCEPT = [
    "anna.lindqvist@forsakringskassan.example",
    "eva.nilsson@goteborg.example",
    "sara.ahmadi@goteborg.example",
]
DECLINE = ["johan.berg@forsakringskassan.example"]
ANSWER = [
    "anna.lindqvist@forsakringskassan.example",
    "per.holm@vgregion.example",
    "lars.ek@goteborg.example",
]


def launch(engine, settings, **extra: object) -> int:  # type: ignore[no-untyped-def]
    return launch_learning_cycle(
        engine, settings, START, WORKSHOP, approve=False, location="Stadshuset, Göteborg", **extra
    )


def subjects(mail: dict[str, list[EmailMessage]]) -> dict[str, list[str]]:
    return {box: [str(m["Subject"]) for m in msgs] for box, msgs in mail.items()}


def new_since(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        box: got[len(before.get(box, [])) :]
        for box, got in after.items()
        if len(got) > len(before.get(box, []))
    }


def test_a_learning_cycle_from_launch_to_reflection(network, settings) -> None:
    mail_dir = Path(settings.mail_dir)
    cycle_id = launch(network, settings, steering=["Styrgruppen@Region.example"])

    # The invitation waits for approval, and the calendar invite waits behind it.
    report = tick(START)
    assert [(s.key, s.status, s.messages) for _, s in report.stages] == [
        ("invitation", "awaiting_approval", EVERYONE)
    ]
    assert read_maildir(mail_dir) == {}
    assert tick(START + timedelta(hours=1)).stages == []
    assert read_maildir(mail_dir) == {}

    approve_stage(network, cycle_id=cycle_id, key="invitation")
    report = tick(START + timedelta(hours=1, minutes=5))
    assert [(s.key, s.status) for _, s in report.stages] == [("workshop", "done")]
    assert report.delivery.sent == 2 * EVERYONE
    seen = subjects(read_maildir(mail_dir))
    assert len(seen) == EVERYONE
    assert seen["sara.ahmadi@goteborg.example"] == [
        "Welcome to Vår 2027",
        "Invitation: workshop Wednesday 10 February – Vår 2027",
    ]
    assert seen["anna.lindqvist@forsakringskassan.example"] == [
        "Välkommen till Vår 2027",
        "Inbjudan: workshop onsdag 10 februari – Vår 2027",
    ]

    # Replies arrive: the reminder goes to those who have not accepted, computed when it runs.
    for email in ACCEPT:
        record_rsvp(network, cycle_id=cycle_id, key="workshop", email=email, partstat="ACCEPTED")
    for email in DECLINE:
        record_rsvp(network, cycle_id=cycle_id, key="workshop", email=email, partstat="DECLINED")
    assert tick(WORKSHOP - timedelta(days=2, minutes=1)).stages == []  # not yet due
    before = seen
    tick(WORKSHOP - timedelta(days=2))
    seen = subjects(read_maildir(mail_dir))
    reminded = new_since(before, seen)
    assert set(reminded) == set(before) - set(ACCEPT)
    assert len(reminded) == EVERYONE - len(ACCEPT)
    assert reminded["johan.berg@forsakringskassan.example"] == [
        "Påminnelse: workshop onsdag 10 februari"
    ]

    # Follow-up questions a week after the workshop, to everyone, in their language.
    before = seen
    tick(WORKSHOP + timedelta(days=7))
    mail = read_maildir(mail_dir)
    seen = subjects(mail)
    assert len(new_since(before, seen)) == EVERYONE
    sara_followup = mail["sara.ahmadi@goteborg.example"][-1]
    body = sara_followup.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "On a scale from 0 to 10, where is our collaboration right now?" in body
    assert "What is better since last time?" in body
    assert "What would one step up the scale look like?" in body
    assert "Answer the questions here (http://127.0.0.1:8000/a/" in body

    # Answers arrive; the reminder five days later goes only to those who did not answer.
    for i, email in enumerate(ANSWER):
        record_answers(
            network,
            settings,
            cycle_id=cycle_id,
            key="followup",
            email=email,
            answers={"scale-now": 5 + 2 * i, "what-is-better": "Vi pratar oftare."},
        )
    before = seen
    tick(WORKSHOP + timedelta(days=12))
    seen = subjects(read_maildir(mail_dir))
    nudged = new_since(before, seen)
    assert set(nudged) == set(before) - set(ANSWER)

    # The reflection goes to the coordinator with the numbers; the cycle completes.
    report = tick(WORKSHOP + timedelta(days=14))
    assert report.completed == [cycle_id]
    [reflection] = read_maildir(mail_dir)["coordinator@coordination.example"]
    text = reflection.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Tackade ja till workshopen: 3, tackade nej: 1" in text
    assert f"Svarade på uppföljningsfrågorna: 3 av {EVERYONE}" in text
    assert "medelvärde 7,0, median 7 (3 svar)" in text  # as Swedish writes numbers
    [report] = [
        p
        for p in reflection.iter_attachments()
        if p.get_filename() == f"reflection-{cycle_id}.html"
    ]
    assert "Vi pratar oftare." in report.get_content()  # the participants' own words
    [to_board] = read_maildir(mail_dir)["styrgruppen@region.example"]  # the steering group
    assert to_board["Subject"] == reflection["Subject"]
    assert any(
        p.get_filename() == f"reflection-{cycle_id}.html" for p in to_board.iter_attachments()
    )

    data = cycle_overview(network, cycle_id=cycle_id)
    assert data["status"] == "completed"
    assert [(s["key"], s["status"], s["messages"]) for s in data["stages"]] == [
        ("invitation", "done", {"sent": EVERYONE}),
        ("workshop", "done", {"sent": EVERYONE}),
        ("workshop-reminder", "done", {"sent": EVERYONE - len(ACCEPT)}),
        ("followup", "done", {"sent": EVERYONE}),
        ("followup-reminder", "done", {"sent": EVERYONE - len(ANSWER)}),
        ("reflection", "done", {"sent": 2}),
    ]
    # Ticking again sends nothing twice.
    total = sum(len(v) for v in read_maildir(mail_dir).values())
    tick(WORKSHOP + timedelta(days=30))
    assert sum(len(v) for v in read_maildir(mail_dir).values()) == total


def test_invites_over_smtp_carry_a_calendar_request_clients_accept(
    network, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingSMTP() as server:
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        cycle_id = launch(network, settings)
        approve_stage(network, cycle_id=cycle_id, key="invitation")
        report = tick(START)
        assert report.delivery.sent == 2 * EVERYONE
        received = server.recorder.parsed()
        envelopes = server.recorder.messages
    assert sorted(to[0] for _, to, _ in envelopes) == sorted(
        [m["To"].addresses[0].addr_spec for m in received]
    )
    invites = [m for m in received if m.get_content_type() == "multipart/mixed"]
    assert len(invites) == EVERYONE
    # Over 8 connections at once, each person still gets the invitation first.
    for person in {m["To"].addresses[0].addr_spec for m in received}:
        theirs = [m for m in received if m["To"].addresses[0].addr_spec == person]
        assert [m.get_content_type() for m in theirs] == [
            "multipart/alternative",
            "multipart/mixed",
        ]
    uids = set()
    for msg in invites:
        to = msg["To"].addresses[0].addr_spec
        assert msg["From"].addresses[0].addr_spec == "samverkan@coordination.example"
        assert msg["Message-ID"].endswith("@coordination.example>")
        assert msg["Date"] is not None and msg["Auto-Submitted"] == "auto-generated"
        alternative, attachment = list(msg.iter_parts())
        parts = list(alternative.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
        assert parts[2].get_param("method") == "REQUEST"
        ics = parts[2].get_content()
        cal = Calendar.from_ical(ics)
        assert cal["METHOD"] == "REQUEST"
        [event] = cal.walk("VEVENT")
        uids.add(str(event["UID"]))
        assert int(event["SEQUENCE"]) == 0
        assert str(event["ATTENDEE"]).lower() == f"mailto:{to.lower()}"
        assert event["ATTENDEE"].params["RSVP"] == "TRUE"
        assert str(event["ORGANIZER"]) == "mailto:samverkan@coordination.example"
        assert event.decoded("dtstart") == WORKSHOP
        assert vobject.readOne(ics).vevent.dtstart.value == WORKSHOP  # a second parser agrees
        assert attachment.get_filename() == "invite.ics"
    assert len(uids) == 1  # one meeting, one UID for everyone
    with Session(network) as s:
        sent = s.exec(select(Message).where(Message.status == "sent")).all()
        assert {m.server_reply for m in sent} == {"Message accepted for delivery"}
        assert all(m.message_id and m.sent_at for m in sent)


def test_refused_recipients_are_failed_or_retried_and_shown(
    network, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingSMTP() as server:
        server.recorder.refuse = {
            "lars.ek@goteborg.example": "550 5.1.1 No such user",
            "per.holm@vgregion.example": "451 4.3.0 Mailbox busy",
        }
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        cycle_id = launch(network, settings)
        approve_stage(network, cycle_id=cycle_id, key="invitation")
        report = tick(START)
        assert (report.delivery.sent, report.delivery.failed, report.delivery.retry) == (
            2 * EVERYONE - 4,
            2,
            2,
        )
        problems = cycle_overview(network, cycle_id=cycle_id)["problems"]
        assert {(p["to"], p["error"][:3]) for p in problems} == {
            ("lars.ek@goteborg.example", "550")
        }
        # The busy mailbox frees up: a later tick delivers the retries, and only them.
        server.recorder.refuse.pop("per.holm@vgregion.example")
        report = tick(START + timedelta(hours=2))
        assert (report.delivery.sent, report.delivery.failed) == (2, 0)
        delivered = [to[0] for _, to, _ in server.recorder.messages]
    assert delivered.count("per.holm@vgregion.example") == 2
    assert "lars.ek@goteborg.example" not in delivered
    assert len(delivered) == 2 * EVERYONE - 2


def test_overlapping_ticks_run_a_stage_once(network, settings) -> None:
    """Two workers executing the same due stage at once: one drafts it, the other backs off."""
    from flows.stages import execute
    from store.db import session_scope

    cycle_id = launch(network, settings)
    approve_stage(network, cycle_id=cycle_id, key="invitation")
    with session_scope(network) as s:
        stage = s.exec(select(Stage).where(Stage.key == "invitation")).one()
        cycle = cycle_overview(network, cycle_id=cycle_id)
    template = template_of(settings, type("C", (), {"template": cycle["template"]})())  # type: ignore[arg-type]
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(execute(network, settings, template, stage_id=stage.id, now=START))  # type: ignore[arg-type]

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]
    with Session(network) as s:
        assert len(s.exec(select(Message).where(Message.stage_id == stage.id)).all()) == EVERYONE


def test_a_cycle_whose_template_is_gone_does_not_stop_the_others(network, settings, tmp_path):
    import shutil

    from flows.settings import REPO_TEMPLATES

    own = tmp_path / "own-templates"
    shutil.copytree(REPO_TEMPLATES, own)
    doomed = launch_cycle(
        network,
        settings,
        template=str(own / "learning-cycle"),
        name="Doomed",
        start=START.isoformat(),
        variables={"workshop_at": WORKSHOP.isoformat(), "location": "X"},
    )
    fine = launch(network, settings)
    shutil.rmtree(own)
    report = tick(START)
    by_cycle = {cid: (s.key, s.status, s.note) for cid, s in report.stages}
    assert by_cycle[doomed][:2] == ("(cycle)", "not run")
    assert "unknown template" in by_cycle[doomed][2]
    assert by_cycle[fine][:2] == ("invitation", "awaiting_approval")


def test_a_stage_moved_into_the_future_after_the_tick_chose_it_is_not_sent(network, settings):
    """The tick has picked the due reminder when a coordinator moves the workshop a week on;
    the claim, made afterwards, must see the new time and leave the reminder for later."""
    from flows.cycles.resequence import reschedule_stage
    from flows.cycles.tick import next_runnable
    from flows.stages import execute
    from store import queries
    from store.db import session_scope

    cycle_id = launch(network, settings)
    approve_stage(network, cycle_id=cycle_id, key="invitation")
    mail_dir = Path(settings.mail_dir)
    tick(START)
    assert {len(m) for m in read_maildir(mail_dir).values()} == {2}
    due = WORKSHOP - timedelta(days=2)
    with session_scope(network) as s:  # what advance does first: choose the stage to run
        chosen = next_runnable(queries.stages_of(s, cycle_id=cycle_id), due)
        cycle = queries.get_cycle(s, cycle_id=cycle_id)
    assert chosen is not None and chosen.key == "workshop-reminder"
    moved = WORKSHOP + timedelta(days=7)
    reschedule_stage(network, settings, cycle_id=cycle_id, key="workshop", at=moved.isoformat())
    template = template_of(settings, cycle)
    assert execute(network, settings, template, stage_id=pk(chosen), now=due) is None
    tick(due)
    got = read_maildir(mail_dir)
    assert {len(m) for m in got.values()} == {3}  # the calendar update, and no reminder
    assert {str(m[2]["Subject"]).startswith(("Ny tid", "New time")) for m in got.values()} == {True}
    tick(moved - timedelta(days=2))
    got = read_maildir(mail_dir)
    assert {len(m) for m in got.values()} == {4}
    assert cycle_overview(network, cycle_id=cycle_id)["stages"][2]["status"] == "done"


def test_a_fanned_out_tick_passes_its_time_to_the_runs_it_starts(network, settings, monkeypatch):
    """Distributed mode: the advance and deliver runs a tick starts on the work pool decide by
    the tick's clock (`tick --now`), not each by the wall clock when a worker picks it up."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL

    from flows.orchestration.deploy import register
    from flows.orchestration.flows import tick as tick_flow
    from flows.stages import execute

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    register(pool="clock-pool", interval=3600, senders=2)
    cycle_id = launch(network, settings)
    approve_stage(network, cycle_id=cycle_id, key="invitation")
    with Session(network) as s:
        invitation = s.exec(select(Stage).where(Stage.key == "invitation")).one()
        cycle = s.get(Cycle, cycle_id)
    execute(network, settings, template_of(settings, cycle), stage_id=pk(invitation), now=START)
    simulated = START + timedelta(minutes=5)  # the workshop invite is due, 13 mails are ready
    with get_client(sync_client=True) as client:
        names = {d.id: d.name for d in client.read_deployments()}
        ours = DeploymentFilter(id=DeploymentFilterId(any_=list(names)))
        # The session's server holds the runs of this test's other variant too.
        earlier = {r.id for r in client.read_flow_runs(deployment_filter=ours)}
    report = tick_flow(simulated, fan_out=True, senders=2)
    assert report.handed_over == [cycle_id]
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(deployment_filter=ours) if r.id not in earlier]
    started = sorted(
        (names[r.deployment_id], r.parameters.get("now")) for r in runs if r.deployment_id in names
    )
    assert started == sorted(
        [
            ("samverkan-advance", simulated.isoformat()),
            ("samverkan-deliver", simulated.isoformat()),
            ("samverkan-deliver", simulated.isoformat()),
        ]
    )
