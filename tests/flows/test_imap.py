"""The coordinator's mailbox over IMAP, against a real Dovecot (tests/dovecot.py): a calendar
reply, a bounce, a temporary failure, an auto-reply, junk and a malformed report read over
IMAPS and STARTTLS; nothing handled twice across restarts or a renumbered folder; flags and
moves on the server; every tick reading the mailbox; ``inbox watch`` woken by IDLE."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.cli import app
from flows.people.imap import HANDLED, watch
from flows.settings import load_settings
from store.models import ImapCursor, InboxMessage, MeetingAttendee
from tests.conftest import read_maildir, tick
from tests.dovecot import PASSWORD, Dovecot, dovecot_fixture
from tests.flows.test_mailbox import (
    ANNA,
    EVA,
    KARIN,
    LARS,
    PER,
    person,
    sent_to,
    shaped,
)
from tests.flows.test_resequence import WORKSHOP, calendar_of, reply

runner = CliRunner()
pytestmark = pytest.mark.subprocess  # a server process of its own


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    yield from dovecot_fixture()


@pytest.fixture
def imap(dovecot: Dovecot, settings, monkeypatch: pytest.MonkeyPatch) -> Dovecot:  # type: ignore[no-untyped-def]
    """An empty mailbox, and the settings to read it (the password from the environment)."""
    dovecot.empty()
    monkeypatch.setenv("SAMVERKAN_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAMVERKAN_IMAP_CA_FILE", str(dovecot.ca_file))
    return dovecot


def reply_email(network, settings, address: str, partstat: str) -> bytes:  # type: ignore[no-untyped-def]
    invite = read_maildir(Path(settings.mail_dir))[address][1]  # the workshop's invite
    uid = str(calendar_of(invite)[0].walk("VEVENT")[0]["UID"])
    ics = reply(uid, address, partstat)
    return (
        f"From: <{address}>\r\nTo: samverkan@coordination.example\r\n"
        f"Subject: Accepted: Workshop\r\nMessage-ID: <reply-{partstat}@example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REPLY; charset=utf-8\r\n\r\n"
        + ics
    ).encode()


REPLY_ID, BOUNCE_ID, DELAY_ID, AUTO_ID, JUNK_ID, BROKEN_ID = (
    "reply-ACCEPTED@example",
    "20270119081402.4F2A1C0123@mail.coordination.example",
    "20270119121402.7A11C0999.1@mail.coordination.example",
    "DB9PR01MB5678A1B2C3@DB9PR01MB5678.eurprd01.prod.exchangelabs.com",
    "news-42@shop.example",
    "broken-dsn-1@mail.coordination.example",
)


def flags_by_id(server: Dovecot, folder: str = "INBOX") -> dict[str, set[bytes]]:
    """The flags of every message of ``folder``, by Message-ID (without brackets)."""
    client = server.client()
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        found = client.fetch(uids, [b"FLAGS", b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return {
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip()[1:-1]: (
                set(data[b"FLAGS"])
            )
            for data in found.values()
        }
    finally:
        client.logout()


@pytest.fixture
def the_mailbox(network, settings, invited, imap: Dovecot) -> Dovecot:  # type: ignore[no-untyped-def]
    """A mailbox holding one of everything: a reply, a bounce, a temporary failure, an
    auto-reply, junk and a malformed delivery report."""
    imap.append(
        reply_email(network, settings, LARS, "ACCEPTED"),
        shaped("postfix-bounce.eml", sent_to(network, ANNA)),
        shaped("postfix-delayed.eml", sent_to(network, PER)),
        shaped("exchange-out-of-office.eml", sent_to(network, EVA)),
        shaped("junk.eml", sent_to(network, ANNA)),
        shaped("malformed-dsn.eml", sent_to(network, KARIN)),
    )
    return imap


def test_every_kind_of_message_read_over_imaps_and_flagged(  # type: ignore[no-untyped-def]
    network, settings, the_mailbox: Dovecot
) -> None:
    result = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "read 6 messages: 1 reply recorded, 1 bounce, 1 temporary failure, 1 auto-reply, "
        "2 not recorded"
    ), result.output
    assert f"  recorded: {LARS}: ACCEPTED for workshop of cycle 1" in lines
    not_recorded = [line for line in lines if line.startswith("  not recorded: INBOX UID")]
    assert len(not_recorded) == 2
    assert any("Status is missing or not a code" in line for line in not_recorded)
    assert any("left for the coordinator" in line for line in not_recorded)

    assert person(network, ANNA).bounced_at is not None
    assert person(network, PER).soft_bounces == 1 and person(network, PER).bounced_at is None
    assert person(network, KARIN).bounced_at is None  # the malformed report named her
    with Session(network) as s:
        stats = {a.participant_id: str(a.partstat) for a in s.exec(select(MeetingAttendee))}
    assert stats[person(network, LARS).id] == "ACCEPTED"

    flags = flags_by_id(the_mailbox)
    assert len(flags) == 6  # nothing deleted
    handled = {m for m, f in flags.items() if HANDLED in f and b"\\Seen" in f}
    untouched = {m for m, f in flags.items() if not f & {HANDLED, b"\\Seen"}}
    assert handled == {REPLY_ID, BOUNCE_ID, DELAY_ID, AUTO_ID}
    # The junk and the report that could not be read stay unread, for the coordinator.
    assert untouched == {JUNK_ID, BROKEN_ID}


def test_a_restart_handles_nothing_twice(  # type: ignore[no-untyped-def]
    network, settings, the_mailbox: Dovecot
) -> None:
    url = the_mailbox.url()
    assert runner.invoke(app, ["inbox", "fetch", "--imap", url]).exit_code == 0
    again = runner.invoke(app, ["inbox", "fetch", "--imap", url])
    assert again.output.splitlines()[0] == "read 0 messages: 0 replies recorded, 0 not recorded"

    # A new message: only it is read.
    the_mailbox.append(
        shaped("postfix-delayed.eml", sent_to(network, PER, category="meeting"), n="2")
    )
    third = runner.invoke(app, ["inbox", "fetch", "--imap", url]).output
    assert third.splitlines()[0].startswith("read 1 message: 0 replies recorded, 1 temporary")
    assert person(network, PER).soft_bounces == 2

    # A run that stopped after handling a message and before flagging it: the next one flags
    # it, and does not handle it again.
    client = the_mailbox.client()
    client.select_folder("INBOX")
    last = max(client.search(["ALL"]))
    client.remove_flags([last], [b"\\Seen", HANDLED])
    client.logout()
    with Session(network) as s:
        row = s.exec(select(InboxMessage).where(InboxMessage.uid == last)).one()
        row.flagged = False
        s.add(row)
        s.commit()
    runner.invoke(app, ["inbox", "fetch", "--imap", url])
    assert HANDLED in flags_by_id(the_mailbox)[DELAY_ID.replace(".1@", ".2@")]
    assert person(network, PER).soft_bounces == 2

    # The server renumbers the folder (a new UIDVALIDITY): every message is read again, and
    # those handled before are known by their bytes.
    with Session(network) as s:
        cursor = s.exec(select(ImapCursor)).one()
        cursor.uidvalidity += 1
        s.add(cursor)
        s.commit()
    renumbered = runner.invoke(app, ["inbox", "fetch", "--imap", url]).output
    assert "the server renumbered the folder" in renumbered
    assert "5 read before" in renumbered.splitlines()[0], renumbered
    assert person(network, PER).soft_bounces == 2
    with Session(network) as s:
        assert len(s.exec(select(InboxMessage)).all()) == 5


def test_starttls_the_folder_to_move_to_and_what_is_refused(  # type: ignore[no-untyped-def]
    network, settings, the_mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused in one line, before anything is read.
    monkeypatch.setenv("SAMVERKAN_IMAP_PASSWORD", "wrong")
    wrong = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert wrong.exit_code == 2
    assert wrong.output.strip() == (
        f"error: IMAP 127.0.0.1:{the_mailbox.imaps_port}: the server refused the login of samverkan"
    )
    monkeypatch.setenv("SAMVERKAN_IMAP_PASSWORD", PASSWORD)
    monkeypatch.delenv("SAMVERKAN_IMAP_CA_FILE")
    untrusted = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url(tls=False)])
    assert untrusted.exit_code == 2
    assert "its certificate is not trusted" in untrusted.output
    assert "SAMVERKAN_IMAP_CA_FILE" in untrusted.output
    in_url = the_mailbox.url().replace("samverkan@", "samverkan:secret@")
    leaked = runner.invoke(app, ["inbox", "fetch", "--imap", in_url])
    assert leaked.exit_code == 2 and "holds a password" in leaked.output
    monkeypatch.delenv("SAMVERKAN_IMAP_PASSWORD")
    nopass = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert nopass.exit_code == 2 and "SAMVERKAN_IMAP_PASSWORD_FILE" in nopass.output
    for result in (wrong, untrusted, leaked, nopass):
        assert "Traceback" not in result.output
    with Session(network) as s:
        assert s.exec(select(InboxMessage)).all() == []

    # STARTTLS on the plain port, the password from a file, handled mail moved to a folder.
    secret = Path(settings.mail_dir).parent / "imap-password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("SAMVERKAN_IMAP_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("SAMVERKAN_IMAP_CA_FILE", str(the_mailbox.ca_file))
    monkeypatch.setenv("SAMVERKAN_IMAP_MOVE_TO", "Handled")
    result = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url(tls=False)])
    assert result.exit_code == 0, result.output
    assert "1 bounce" in result.output.splitlines()[0]
    assert set(flags_by_id(the_mailbox, "Handled")) == {REPLY_ID, BOUNCE_ID, DELAY_ID, AUTO_ID}
    assert set(flags_by_id(the_mailbox, "INBOX")) == {JUNK_ID, BROKEN_ID}


def test_each_tick_reads_the_mailbox_before_it_runs_a_stage(  # type: ignore[no-untyped-def]
    network, settings, invited, imap: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    imap.append(shaped("gmail-bounce.eml", sent_to(network, ANNA)))
    monkeypatch.setenv("SAMVERKAN_IMAP_URL", imap.url())
    before = len(read_maildir(Path(settings.mail_dir))[ANNA])
    report = tick(WORKSHOP - timedelta(days=2))
    lines = report.lines()
    assert lines[1] == "  mailbox: read 1 message: 0 replies recorded, 1 bounce, 0 not recorded"
    assert any("1 left out: address bounced" in line for line in lines), lines
    assert len(read_maildir(Path(settings.mail_dir))[ANNA]) == before

    # A mailbox that cannot be read is one line; the tick goes on.
    monkeypatch.setenv("SAMVERKAN_IMAP_PASSWORD", "wrong")
    report = tick(WORKSHOP + timedelta(days=7))
    assert report.lines()[1].startswith("  mailbox: not read: IMAP 127.0.0.1:")
    assert any("followup" in line for line in report.lines())


def test_watch_is_woken_by_idle(  # type: ignore[no-untyped-def]
    network, settings, invited, imap: Dovecot
) -> None:
    said: list[str] = []
    config = load_settings(imap_url=imap.url())
    watcher = threading.Thread(
        target=watch, args=(network, config), kwargs={"say": said.append, "rounds": 2}
    )
    started = time.monotonic()
    watcher.start()
    while not any(line.startswith("watching") for line in said):
        assert time.monotonic() - started < 30, said
        time.sleep(0.05)
    time.sleep(0.5)  # in IDLE now
    imap.append(shaped("postfix-bounce.eml", sent_to(network, EVA)))
    watcher.join(timeout=60)
    assert not watcher.is_alive(), said
    assert said[0] == f"watching samverkan@127.0.0.1:{imap.imaps_port}/INBOX (IDLE)"
    assert said[1] == "read 1 message: 0 replies recorded, 1 bounce, 0 not recorded"
    assert person(network, EVA).bounced_at is not None


def test_a_message_that_fails_unforeseen_is_passed_over_not_a_wall(  # type: ignore[no-untyped-def]
    network, settings, the_mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import flows.people.imap as imap_module

    # The bounce was saved from a Maildir first (LF line ends): over IMAP (CRLF) it is known.
    saved = tmp_path / "saved.eml"
    saved.write_bytes(shaped("postfix-bounce.eml", sent_to(network, ANNA)).replace(b"\r\n", b"\n"))
    assert runner.invoke(app, ["inbox", "import", str(saved)]).exit_code == 0

    real = imap_module.handle

    def trips(session, where, data, report, **kw):  # type: ignore[no-untyped-def]
        if b"Delayed Mail" in data:
            raise RecursionError("maximum recursion depth exceeded")
        return real(session, where, data, report, **kw)

    monkeypatch.setattr(imap_module, "handle", trips)
    result = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "read 6 messages: 1 reply recorded, 1 auto-reply, 1 read before, 3 not recorded"
    ), result.output
    assert any(
        "could not be handled (RecursionError: maximum recursion depth exceeded)" in line
        for line in lines
    )
    assert person(network, PER).soft_bounces == 0
    flags = flags_by_id(the_mailbox)
    assert HANDLED in flags[BOUNCE_ID] and not flags[DELAY_ID] & {HANDLED, b"\\Seen"}
    # It does not stop the next reading either.
    again = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert again.output.splitlines()[0] == "read 0 messages: 0 replies recorded, 0 not recorded"


def test_a_folder_to_move_to_that_does_not_exist_is_said_before_anything_is_read(  # type: ignore[no-untyped-def]
    network, settings, the_mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMVERKAN_IMAP_MOVE_TO", "Behandlat")
    result = runner.invoke(app, ["inbox", "fetch", "--imap", the_mailbox.url()])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: IMAP 127.0.0.1:{the_mailbox.imaps_port} has no folder Behandlat "
        "(SAMVERKAN_IMAP_MOVE_TO): create it, or unset it to flag handled messages in place"
    )
    with Session(network) as s:
        assert s.exec(select(InboxMessage)).all() == []
