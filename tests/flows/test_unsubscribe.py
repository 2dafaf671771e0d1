"""One-click unsubscribe (RFC 8058), end to end: the link as it arrives in a message's
headers, posted the way a mail provider posts it, and what the next stages then send."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.cli import app as cli
from flows.people.privacy import erase_person
from flows.stages import execute
from flows.templates import template_of
from flows.web.app import create_app
from store.models import AuditEntry, Cycle, Message, Participant, Stage
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.flows.test_web import ANNA, SARA, Pages

TZ = ZoneInfo("Europe/Stockholm")
START = datetime.now(TZ).replace(microsecond=0) + timedelta(days=2)
WORKSHOP = START + timedelta(days=21)
COORDINATOR = "coordinator@coordination.example"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def unsubscribe_path(mail: Path, who: str) -> str:
    """The web link of the List-Unsubscribe header of the last message ``who`` received."""
    msg = read_maildir(mail)[who][-1]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    entries = [e.strip().strip("<>") for e in str(msg["List-Unsubscribe"]).split(",")]
    web = [e for e in entries if e.startswith(("https://", "http://"))]
    assert len(web) == 1, entries
    url = urlsplit(web[0])
    assert f"{url.scheme}://{url.netloc}" == "http://127.0.0.1:8000"  # SAMVERKAN_BASE_URL
    return url.path


def received(mail: Path) -> dict[str, int]:
    return {who: len(msgs) for who, msgs in read_maildir(mail).items()}


def run_stage_without_sending(engine, settings, cycle_id: int, key: str, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """Draft a stage into the outbox, as a tick does, but leave delivery to the next tick."""
    with Session(engine) as s:
        cycle = s.get(Cycle, cycle_id)
        stage = s.exec(select(Stage).where(Stage.cycle_id == cycle_id, Stage.key == key)).one()
    execute(engine, settings, template_of(settings, cycle), stage_id=stage.id, now=now)  # type: ignore[arg-type]


def test_one_click_unsubscribe_stops_the_next_stages(network, settings) -> None:
    mail = Path(settings.mail_dir)
    pages = Pages(create_app(settings, network))
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP)
    tick(START)  # the invitation and the workshop's calendar invite
    invite = read_maildir(mail)[SARA][-1]
    assert invite["Content-Language"] == "en"  # Sara reads English, Anna Swedish
    assert read_maildir(mail)[ANNA][-1]["Content-Language"] == "sv"
    assert invite["List-Id"] == f"Vår 2027 <cycle-{cycle_id}.samverkan.coordination.example>"
    path = unsubscribe_path(mail, SARA)
    assert path.startswith("/u/") and path != unsubscribe_path(mail, ANNA)

    # The reminder is already waiting in the outbox when she unsubscribes.
    run_stage_without_sending(network, settings, cycle_id, "workshop-reminder", WORKSHOP)
    before = received(mail)

    # Opening the link (a person, or a link scanner) only asks.
    page = pages.get(path)
    assert page.status_code == 200 and '<html lang="en" dir="ltr">' in page.text
    assert "Stop sending me emails" in page.text and 'method="post"' in page.text
    with Session(network) as s:
        assert s.exec(select(Participant).where(Participant.email == SARA)).one().consent

    # The mail provider's one-click POST: the body of RFC 8058, no cookie, no CSRF token.
    done = pages.post(path, data=ONE_CLICK)
    assert done.status_code == 200 and "We will send you no more emails" in done.text
    again = pages.post(path, data=ONE_CLICK)
    assert again.status_code == 200 and "You have already unsubscribed" in again.text
    assert "already" in pages.get(path).text

    tick(WORKSHOP - timedelta(days=1))  # delivers the reminder that was waiting
    tick(WORKSHOP + timedelta(days=7))  # the follow-up
    after = received(mail)
    assert after[SARA] == before[SARA]
    assert after[ANNA] == before[ANNA] + 2  # the reminder and the follow-up

    with Session(network) as s:
        dropped = s.exec(select(Message).where(Message.to_key == SARA)).all()
        entries = s.exec(
            select(AuditEntry).where(AuditEntry.action == "participant.unsubscribe")
        ).all()
    assert [str(m.status) for m in dropped if m.category == "reminder"] == ["dropped"]
    assert len(entries) == 1  # the second POST changed nothing
    assert entries[0].actor == "participant" and entries[0].cycle_id == cycle_id
    assert SARA not in entries[0].detail and "Sara" not in entries[0].detail
    assert "1 unsent messages dropped" in entries[0].detail

    # The coordinator sees it.
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["participants", "list", "--json"]).output)
    assert [p["email"] for p in listed if p["unsubscribed"]] == [SARA]
    table = runner.invoke(cli, ["participants", "list"]).output
    assert [line for line in table.splitlines() if "unsubscribed" in line] == [
        next(line for line in table.splitlines() if SARA in line)
    ]
    shown = runner.invoke(cli, ["cycle", "show", str(cycle_id)]).output
    assert f"unsubscribed, no more mail to: {SARA}" in shown

    # The reflection goes to the coordinator: no personal unsubscribe link there.
    tick(WORKSHOP + timedelta(days=14))
    report = read_maildir(mail)[COORDINATOR][-1]
    assert report["List-Unsubscribe"] is None and report["List-Unsubscribe-Post"] is None
    assert report["List-Id"] and report["Content-Language"] == "sv"

    # Once she is erased, her link is like any unknown link.
    erase_person(network, email=SARA)
    for gone in (pages.get(path), pages.post(path, data=ONE_CLICK)):
        assert gone.status_code == 404 and "Sidan finns inte längre" in gone.text


def test_unsubscribing_needs_a_post_with_the_one_click_body(network, settings) -> None:
    mail = Path(settings.mail_dir)
    pages = Pages(create_app(settings, network))
    launch_learning_cycle(network, settings, START, WORKSHOP)
    tick(START)
    path = unsubscribe_path(mail, ANNA)
    # Mail providers may send the one-click body as multipart/form-data (RFC 8058 §3.2).
    for refused in (
        pages.post(path),
        pages.post(path, json=ONE_CLICK),
        pages.post(path, data={"List-Unsubscribe": "yes"}),
    ):
        assert refused.status_code == 400 and '<html lang="sv" dir="ltr">' in refused.text
        assert "Använd knappen på sidan" in refused.text
    with Session(network) as s:
        assert s.exec(select(Participant).where(Participant.email == ANNA)).one().consent
    multipart = pages.post(path, data=ONE_CLICK, files={"unused": ("x.txt", b"x", "text/plain")})
    assert multipart.status_code == 200 and "Vi skickar inga fler mejl till dig" in multipart.text
    for unknown in ("/u/" + "x" * 43, "/u/short", path.replace("/u/", "/a/")):
        assert pages.get(unknown).status_code == 404
        assert pages.post(unknown, data=ONE_CLICK).status_code == 404
