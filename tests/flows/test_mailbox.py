"""The coordinator's mailbox read from files (``samverkan inbox import``): delivery reports in
the shapes Postfix, Exchange and Gmail send, temporary failures, auto-replies, and what cannot
be tied to a message samverkan sent. The same messages over IMAP: tests/flows/test_imap.py."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.cli import app
from flows.people.inbox import import_replies
from store import queries
from store.models import AuditEntry, InboxMessage, Message, Participant, Response
from tests.conftest import answered, read_maildir, tick
from tests.flows.test_resequence import WORKSHOP

DATA = Path(__file__).parents[1] / "data" / "mailbox"
runner = CliRunner()

ANNA = "anna.lindqvist@forsakringskassan.example"
PER = "per.holm@vgregion.example"
EVA = "eva.nilsson@goteborg.example"
KARIN = "karin.strom@vgregion.example"
LARS = "lars.ek@goteborg.example"


def sent_to(engine, address: str, *, category: str = "email") -> Message:  # type: ignore[no-untyped-def]
    """The message of ``category`` samverkan sent to ``address``."""
    with Session(engine) as s:
        found = s.exec(
            select(Message).where(Message.to_key == address, Message.category == category)
        ).first()
        assert found is not None and found.message_id, f"nothing of {category} sent to {address}"
        return found


def shaped(name: str, message: Message, **extra: str) -> bytes:
    """A data file filled in for one message samverkan sent, with CRLF line ends as on the
    wire."""
    text = (DATA / name).read_text()
    values = {"to": message.to_email, "message_id": message.message_id or "", "n": "1", **extra}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def person(engine, address: str) -> Participant:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        found = queries.find_participant(s, email=address)
        assert found is not None
        return found


def test_bounces_in_the_shapes_of_postfix_exchange_and_gmail(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    folder = tmp_path / "mailbox"
    folder.mkdir()
    for address, shape in ((ANNA, "postfix"), (EVA, "exchange"), (KARIN, "gmail")):
        data = shaped(f"{shape}-bounce.eml", sent_to(network, address))
        (folder / f"{shape}.eml").write_bytes(data)

    result = runner.invoke(app, ["inbox", "import", str(folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "read 3 files: 0 replies recorded, 3 bounces, 0 not recorded"
    assert any(line.startswith(f"  bounced: {ANNA}: 5.1.1 550 5.1.1") for line in lines), lines
    assert any(
        line.startswith(f"  bounced: {EVA}: 5.1.10 550 5.1.10 RESOLVER.ADR.RecipientNotFound")
        for line in lines
    ), lines
    assert any(line.startswith(f"  bounced: {KARIN}: 5.1.1") for line in lines), lines

    for address in (ANNA, EVA, KARIN):
        p = person(network, address)
        assert p.bounced_at is not None and p.bounce_reason
        assert queries_status(network, address) == "bounced"
    assert person(network, PER).bounced_at is None

    listed = json.loads(runner.invoke(app, ["participants", "list", "--json"]).output)
    by_email = {p["email"]: p for p in listed}
    assert by_email[ANNA]["bounced"].startswith("5.1.1")
    assert by_email[PER]["bounced"] is None
    table = runner.invoke(app, ["participants", "list"]).output
    assert any(ANNA in row and row.rstrip().endswith("bounced") for row in table.splitlines())

    shown = runner.invoke(app, ["cycle", "show", str(invited)]).output
    assert "3 left out: address bounced" in shown
    assert f"  {EVA}: 5.1.10" in shown

    with Session(network) as s:
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
    assert actions.count("participant.bounced") == 3

    # Read again: the same bytes change nothing, and are said to have been read.
    again = runner.invoke(app, ["inbox", "import", str(folder)])
    assert again.output.splitlines()[0] == (
        "read 3 files: 0 replies recorded, 3 read before, 0 not recorded"
    )
    with Session(network) as s:
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
    assert actions.count("participant.bounced") == 3


def queries_status(engine, address: str) -> str:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        statuses = {
            str(m.status)
            for m in s.exec(select(Message).where(Message.to_key == address)).all()
            if m.category == "email"
        }
    assert len(statuses) == 1
    return statuses.pop()


def test_temporary_failures_are_counted_once_a_message_and_mark_the_address_at_the_limit(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    invitation = sent_to(network, PER)
    invite = sent_to(network, PER, category="meeting")

    def notice(message: Message, n: int) -> list[str]:
        path = tmp_path / f"delayed-{n}.eml"
        path.write_bytes(shaped("postfix-delayed.eml", message, n=str(n)))
        return import_replies(network, path, soft_bounce_limit=3).delayed

    assert notice(invitation, 1) == [
        f"{PER}: 4.4.1 connect to mx.vgregion.example[192.0.2.30]:25: Connection timed out "
        f"(message {invitation.id} of cycle {invited}), 1 of 3"
    ]
    assert notice(invite, 2)[0].endswith(f"(message {invite.id} of cycle {invited}), 2 of 3")
    # A second warning about the invitation is no news: the count stays.
    assert notice(invitation, 3)[0].endswith("2 of 3 (this message was counted already)")
    p = person(network, PER)
    assert (p.soft_bounces, p.bounced_at) == (2, None)
    # The same notice read twice is one notice.
    assert import_replies(network, tmp_path / "delayed-2.eml").already == ["delayed-2.eml"]
    assert person(network, PER).soft_bounces == 2
    # The message itself may still arrive: it stays sent.
    assert queries_status(network, PER) == "sent"

    tick(WORKSHOP - timedelta(days=2))  # the reminder: a third message to Per
    reminder = sent_to(network, PER, category="reminder")
    assert notice(reminder, 4)[0].endswith("3 of 3; address marked as bounced")
    p = person(network, PER)
    assert p.bounced_at is not None
    assert p.bounce_reason and p.bounce_reason.startswith("3 temporary failures, the last 4.4.1")


def test_a_final_failure_is_permanent_whatever_its_class(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    """Postfix gives up on a message that waited out its queue lifetime with 4.4.7."""
    path = tmp_path / "expired.eml"
    data = shaped("postfix-delayed.eml", sent_to(network, PER))
    path.write_bytes(
        data.replace(b"Action: delayed", b"Action: failed").replace(b"4.4.1", b"4.4.7")
    )
    report = import_replies(network, path, soft_bounce_limit=3)
    assert report.delayed == [] and len(report.bounced) == 1
    assert person(network, PER).bounced_at is not None
    assert queries_status(network, PER) == "bounced"


def test_auto_replies_are_recorded_and_never_count_as_answers(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    folder = tmp_path / "auto"
    folder.mkdir()
    for address, name in (
        (PER, "exchange-out-of-office.eml"),
        (EVA, "vacation-subject-only.eml"),
        (KARIN, "gmail-vacation.eml"),
    ):
        (folder / name).write_bytes(shaped(name, sent_to(network, address)))
    report = import_replies(network, folder)
    assert len(report.auto_replies) == 2
    assert any(
        r.startswith(PER) and "Auto-Submitted: auto-generated" in r for r in report.auto_replies
    )
    assert any(r.startswith(KARIN) and "auto-replied" in r for r in report.auto_replies)
    # A subject alone ("Autosvar", "Frånvaro") may be a person's own words: a person reads it.
    assert report.problems == [
        "vacation-subject-only.eml: its subject looks like an out-of-office reply, but no "
        "header says it is automatic (left for the coordinator)"
    ]
    with Session(network) as s:
        assert s.exec(select(Response)).all() == []
        kinds = [m.kind for m in s.exec(select(InboxMessage)).all()]
    assert kinds == ["auto-reply"] * 2
    for address in (PER, EVA, KARIN):
        assert person(network, address).bounced_at is None
        assert person(network, address).soft_bounces == 0

    # Out of office is not an answer: the reminder to those who did not accept still goes.
    mail = read_maildir(Path(settings.mail_dir))
    before = {k: len(v) for k, v in mail.items()}
    tick(WORKSHOP - timedelta(days=2))
    after = read_maildir(Path(settings.mail_dir))
    assert len(after[PER]) == before[PER] + 1


def test_what_cannot_be_tied_to_a_sent_message_is_left_for_the_coordinator(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    anna = sent_to(network, ANNA)
    (folder / "a-junk.eml").write_bytes(shaped("junk.eml", anna))
    (folder / "b-malformed.eml").write_bytes(shaped("malformed-dsn.eml", anna))
    (folder / "c-stranger.eml").write_bytes(shaped("stranger-bounce.eml", anna))
    (folder / "d-unknown-reply.eml").write_bytes(
        shaped("gmail-vacation.eml", anna, message_id="<not-ours@elsewhere.example>")
    )
    (folder / "e-garbage.eml").write_bytes(b"\xff\xfe\x00\x01 not mail at all \x80\x81")
    (folder / "f-good.eml").write_bytes(shaped("postfix-bounce.eml", sent_to(network, LARS)))

    result = runner.invoke(app, ["inbox", "import", str(folder)])
    assert result.exit_code == 0 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0] == "read 6 files: 0 replies recorded, 1 bounce, 5 not recorded"
    problems = {
        line.removeprefix("  not recorded: ").split(":")[0]: line
        for line in lines
        if line.startswith("  not recorded: ")
    }
    assert sorted(problems) == [
        "a-junk.eml",
        "b-malformed.eml",
        "c-stranger.eml",
        "d-unknown-reply.eml",
        "e-garbage.eml",
    ]
    assert "left for the coordinator" in problems["a-junk.eml"]
    assert "Status is missing or not a code" in problems["b-malformed.eml"]
    assert "nobody@elsewhere.example, to whom samverkan sent nothing" in problems["c-stranger.eml"]
    assert (
        "an auto-reply (Auto-Submitted: auto-replied) to no message"
        in problems["d-unknown-reply.eml"]
    )
    # The malformed report named Anna, but could not be read: nothing is guessed from it.
    assert person(network, ANNA).bounced_at is None
    assert person(network, LARS).bounced_at is not None
    # Only what was handled is kept, so a file left over can be read again later.
    with Session(network) as s:
        assert len(s.exec(select(InboxMessage)).all()) == 1


def test_a_bounced_participant_is_left_out_and_counted_as_not_reached(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    path = tmp_path / "bounce.eml"
    path.write_bytes(shaped("postfix-bounce.eml", sent_to(network, ANNA)))
    assert len(import_replies(network, path).bounced) == 1

    mail = read_maildir(Path(settings.mail_dir))
    before = len(mail[ANNA])
    for when in (WORKSHOP - timedelta(days=2), WORKSHOP + timedelta(days=7)):
        report = tick(when)
        notes = [o.note for _, o in report.stages]
        assert any("1 left out: address bounced" in (n or "") for n in notes), notes
    assert len(read_maildir(Path(settings.mail_dir))[ANNA]) == before

    with Session(network) as s:
        asked = s.exec(select(Message).where(Message.category == "followup")).all()
    assert ANNA not in {m.to_key for m in asked} and len(asked) == 12

    shown = json.loads(runner.invoke(app, ["cycle", "show", str(invited), "--json"]).output)
    assert [b["to"] for b in shown["bounced"]] == [ANNA]
    followup = next(s for s in shown["stages"] if s["key"] == "followup")
    assert followup["note"] == "1 left out: address bounced"

    # Four answer, so that the report may show the network's counts.
    with Session(network) as s:
        stage = queries.get_stage(s, cycle_id=invited, key="followup")
        for address in (PER, EVA, KARIN, LARS):
            answered(s, stage, queries.find_participant(s, email=address), "scale-now", scale=7)
        s.commit()
    report = runner.invoke(app, ["report", str(invited), "--format", "md"]).output
    assert "1 nåddes inte: mejl till deras adress studsade" in report, report

    # Coverage: the indicators count 12 asked (Anna was not reached), not 13.
    figures = json.loads(
        runner.invoke(app, ["indicators", "--cycle", str(invited), "--format", "json"]).output
    )
    everyone = next(
        r for r in figures if r["organisation"] == r["role"] == "*" and r["indicator"] == "asked"
    )
    assert everyone["value"] == 12


def test_a_new_address_in_the_participants_file_clears_the_bounce(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    path = tmp_path / "bounce.eml"
    path.write_bytes(shaped("postfix-bounce.eml", sent_to(network, ANNA)))
    import_replies(network, path)
    old_id = person(network, ANNA).id

    # The same address again does not clear it: it is still the one that bounced.
    same = tmp_path / "same.csv"
    same.write_text(
        "name,email,organisation,role,language\n"
        f"Anna Lindqvist,{ANNA},Försäkringskassan,professional,sv\n"
    )
    assert runner.invoke(app, ["participants", "import", str(same)]).exit_code == 0
    assert person(network, ANNA).bounced_at is not None

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "name,email,organisation,role,language,previous_email\n"
        "Anna Lindqvist,anna.l@fk.example,Försäkringskassan,professional,sv,"
        "nobody@nowhere.example\n"
        f"Per Holm,{LARS},Västra Götalandsregionen,professional,sv,{PER}\n"
    )
    refused = runner.invoke(app, ["participants", "import", str(bad)])
    assert refused.exit_code == 2
    assert "line 2: previous_email nobody@nowhere.example is not in the network" in (refused.output)
    assert f"line 3: {LARS} is already in the network (as another participant)" in refused.output
    assert person(network, ANNA).bounced_at is not None  # nothing was written

    moved = tmp_path / "moved.csv"
    moved.write_text(
        "name,email,organisation,role,language,previous_email\n"
        f"Anna Lindqvist,anna.lindqvist@fk.example,Försäkringskassan,professional,sv,{ANNA}\n"
    )
    result = runner.invoke(app, ["participants", "import", str(moved)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "imported 0 new and updated 1 participants"
    p = person(network, "anna.lindqvist@fk.example")
    assert p.id == old_id and p.bounced_at is None and p.bounce_reason is None
    with Session(network) as s:
        assert queries.find_participant(s, email=ANNA) is None
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
    assert "participant.unbounced" in actions

    tick(WORKSHOP - timedelta(days=2))
    assert "anna.lindqvist@fk.example" in read_maildir(Path(settings.mail_dir))


def test_the_workspace_shows_who_was_not_reached(  # type: ignore[no-untyped-def]
    network, settings, invited, web, tmp_path: Path
) -> None:
    from tests.flows.test_workspace_network import text_of
    from tests.workspace import COORDINATOR

    path = tmp_path / "bounce.eml"
    # Exchange's report without the original's headers: tied by its In-Reply-To.
    data = shaped("exchange-bounce.eml", sent_to(network, ANNA))
    headers = data.split(b"Content-Type: text/rfc822-headers")
    data = (
        headers[0]
        + b"Content-Type: text/rfc822-headers"
        + headers[1].replace(b"Message-ID", b"X-Gone")
    )
    path.write_bytes(data)
    assert len(import_replies(network, path).bounced) == 1
    assert person(network, ANNA).bounce_reason.startswith("5.1.10")

    client = web(COORDINATOR)
    shown = text_of(client.get("/workspace/network").text)
    assert "13 participants, 1 of them no longer gets mail (1 with an address that bounced)." in (
        shown
    )
    assert "No: address bounced (5.1.10 550 5.1.10 RESOLVER.ADR.RecipientNotFound" in shown
    page = text_of(client.get(f"/workspace/cycles/{invited}").text)
    assert "Addresses that bounced" in page and f"{ANNA}: 5.1.10" in page
    overview = text_of(client.get("/workspace/").text)
    assert "1 message bounced (not reached" in overview
    outbox = text_of(
        client.get(f"/workspace/cycles/{invited}/outbox", params={"status": "bounced"}).text
    )
    assert ANNA in outbox


def test_what_is_tied_to_whom_is_never_guessed(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    from tests.flows.test_resequence import calendar_of, reply

    folder = tmp_path / "tied"
    folder.mkdir()
    # A calendar reply that its program marked Auto-Submitted is still a reply.
    invite = read_maildir(Path(settings.mail_dir))[LARS][1]
    uid = str(calendar_of(invite)[0].walk("VEVENT")[0]["UID"])
    (folder / "a-reply.eml").write_bytes(
        (
            f"From: <{LARS}>\r\nTo: samverkan@coordination.example\r\nSubject: Accepted\r\n"
            "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/calendar; method=REPLY\r\n\r\n" + reply(uid, LARS, "ACCEPTED")
        ).encode()
    )
    # Bob's out-of-office, answering a thread that began with samverkan's mail to Per.
    (folder / "b-someone-else.eml").write_bytes(
        shaped("exchange-out-of-office.eml", sent_to(network, PER)).replace(
            f"From: Per Holm <{PER}>".encode(), b"From: Bob <bob@elsewhere.example>"
        )
    )
    # A report that answers Eva's invitation, about somebody else.
    eva = sent_to(network, EVA)
    other = shaped("exchange-bounce.eml", eva, to="someone@goteborg.example")
    head, _, returned = other.partition(b"Content-Type: text/rfc822-headers")
    returned = returned.replace(b"Message-ID", b"X-Gone")  # tied only by its In-Reply-To
    (folder / "c-other-recipient.eml").write_bytes(
        head + b"Content-Type: text/rfc822-headers" + returned
    )
    # One report about two people, naming no message: each by their address.
    two = shaped("stranger-bounce.eml", eva).replace(
        b"Final-Recipient: rfc822; nobody@elsewhere.example\r\nAction: failed\r\nStatus: 5.1.1",
        b"Final-Recipient: rfc822; "
        + KARIN.encode()
        + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\nFinal-Recipient: rfc822; "
        + ANNA.encode()
        + b"\r\nAction: failed\r\nStatus: 5.2.2",
    )
    (folder / "d-two.eml").write_bytes(two)
    report = import_replies(network, folder)
    assert report.recorded == [f"{LARS}: ACCEPTED for workshop of cycle {invited}"]
    assert sorted(b.split(":")[0] for b in report.bounced) == [ANNA, KARIN]
    problems = {p.split(":")[0]: p for p in report.problems}
    assert sorted(problems) == ["b-someone-else.eml", "c-other-recipient.eml"], report.problems
    assert "from bob@elsewhere.example to message" in problems["b-someone-else.eml"]
    assert (
        "about someone@goteborg.example, not about the recipient"
        in problems["c-other-recipient.eml"]
    )
    assert person(network, EVA).bounced_at is None
    assert person(network, PER).bounced_at is None


def test_erasure_reaches_an_address_the_person_had_before(  # type: ignore[no-untyped-def]
    network, settings, invited, tmp_path: Path
) -> None:
    from tests.store.test_erasure import dump

    path = tmp_path / f"{ANNA}.eml"
    path.write_bytes(shaped("postfix-bounce.eml", sent_to(network, ANNA)))
    import_replies(network, path)
    moved = tmp_path / "moved.csv"
    moved.write_text(
        "name,email,organisation,role,language,previous_email\n"
        f"Anna Lindqvist,anna.l@fk.example,Försäkringskassan,professional,sv,{ANNA}\n"
    )
    assert runner.invoke(app, ["participants", "import", str(moved)]).exit_code == 0
    assert ANNA in dump(network)
    erased = runner.invoke(app, ["participants", "erase", "anna.l@fk.example", "--yes"])
    assert erased.exit_code == 0, erased.output
    after = dump(network).lower()
    assert ANNA not in after and "anna.l@fk.example" not in after and "lindqvist" not in after
