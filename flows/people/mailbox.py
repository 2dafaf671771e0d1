"""The coordinator's mailbox, read for them: what each message is, and what it changes.

One message at a time, from a file, a Maildir or an IMAP folder (``flows/people/imap.py``):

- a **calendar reply** (iMIP METHOD:REPLY) records the attendee's answer on the meeting
  (``flows/people/inbox.py``);
- a **delivery status notification** (RFC 3464, ``multipart/report;
  report-type=delivery-status``): a permanent failure (status 5.x.x) marks the participant's
  address as bounced, so later stages leave them out and coverage counts them as not reached; a
  temporary one (4.x.x) is counted, and marks the address after ``SAMVERKAN_SOFT_BOUNCE_LIMIT``
  of them;
- an **auto-reply** (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``, the usual out-of-office
  shapes) is recorded, and never counted as an answer;
- anything else is left for the coordinator to read.

Each outcome is tied to the message that caused it by its Message-ID (the one the notification
returns, or the auto-reply's ``In-Reply-To``/``References``) or, for a notification without
the original's headers, by its original recipient; never by guessing from a name or a subject.
A handled message is kept by the SHA-256 of its bytes (table ``inbox_message``), so reading it
again, from any source, changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from typing import cast

from sqlmodel import Session

from flows.wording import plural
from store import queries
from store.models import InboxMessage, Participant, pk
from store.models import Message as Sent

REPLY, BOUNCE, DELAY, AUTO_REPLY = "reply", "bounce", "delay", "auto-reply"
SUBJECT_ONLY = "an out-of-office subject"

# Subjects that out-of-office replies start with, where a responder sets no header for it.
_AUTO_SUBJECTS = re.compile(
    r"^\s*(automatic reply|auto(matic)?[ -]?response|autosvar|automatiskt svar|out of (the )?"
    r"office|frånvaro|poissa|abwesenheitsnotiz|réponse automatique|respuesta automática)\b",
    re.IGNORECASE,
)
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass
class MailReport:
    """What one reading of the mailbox did, a line per message it acted on or left alone."""

    files: int = 0
    unit: str = "file"
    recorded: list[str] = field(default_factory=list)  # calendar replies
    bounced: list[str] = field(default_factory=list)
    delayed: list[str] = field(default_factory=list)
    auto_replies: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # handled before (the same bytes)
    problems: list[str] = field(default_factory=list)  # left for the coordinator

    def lines(self) -> list[str]:
        parts = [f"{plural(len(self.recorded), 'reply', 'replies')} recorded"]
        if self.bounced:
            parts.append(plural(len(self.bounced), "bounce"))
        if self.delayed:
            parts.append(plural(len(self.delayed), "temporary failure"))
        if self.auto_replies:
            parts.append(plural(len(self.auto_replies), "auto-reply", "auto-replies"))
        if self.already:
            parts.append(f"{len(self.already)} read before")
        parts.append(f"{len(self.problems)} not recorded")
        out = [f"read {plural(self.files, self.unit)}: {', '.join(parts)}"]
        out += [f"  recorded: {r}" for r in self.recorded]
        out += [f"  bounced: {r}" for r in self.bounced]
        out += [f"  temporary failure: {r}" for r in self.delayed]
        out += [f"  auto-reply: {r}" for r in self.auto_replies]
        out += [f"  read before: {r}" for r in self.already]
        out += [f"  not recorded: {p}" for p in self.problems]
        return out


def digest(data: bytes) -> str:
    """The key a message is known by: the SHA-256 of its bytes with CRLF read as LF, so that a
    copy saved from a Maildir (LF) and the same message over IMAP (CRLF) are one."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


@dataclass(frozen=True)
class Where:
    """Where a message was read: a file's name, or an IMAP folder and the message's UID."""

    name: str
    source: str = ""
    uidvalidity: int | None = None
    uid: int | None = None


def handle(
    session: Session,
    where: Where,
    data: bytes,
    report: MailReport,
    *,
    now: datetime,
    soft_bounce_limit: int,
) -> bool:
    """Understand one message and act on it; True when it was handled (or had been before), so
    that an IMAP folder may flag it. Runs in the caller's transaction."""
    from flows.people import inbox

    key = digest(data)
    if queries.inbox_message_seen(session, digest=key):
        report.already.append(where.name)
        return True
    if data.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
        return _reply(session, where, key, data, report, now)
    try:
        message = cast(EmailMessage, message_from_bytes(data, policy=policy.default))
        if _is_dsn(message):
            return _dsn(session, where, key, message, report, now, soft_bounce_limit)
        # A calendar reply first: calendar programs may mark their replies Auto-Submitted.
        if any(True for _ in inbox.calendars(message)):
            return _reply(session, where, key, data, report, now)
        why = _auto_reply(message)
        if why:
            return _auto(session, where, key, message, why, report, now)
    except inbox.BROKEN as exc:
        report.problems.append(f"{where.name}: unreadable ({inbox.one_line(exc)})")
        return False
    report.problems.append(
        f"{where.name}: no calendar part, and not a delivery report or an auto-reply "
        "(left for the coordinator)"
    )
    return False


def _remember(
    session: Session,
    where: Where,
    key: str,
    kind: str,
    *,
    participant_id: int | None,
    message_row: int | None,
    status: str | None = None,
    detail: str = "",
    now: datetime,
) -> None:
    queries.record_inbox_message(
        session,
        row=InboxMessage(
            digest=key,
            kind=kind,
            participant_id=participant_id,
            message_id=message_row,
            status=status,
            detail=detail,
            source=where.source or where.name,
            uidvalidity=where.uidvalidity,
            uid=where.uid,
            handled_at=now,
        ),
    )


def _reply(
    session: Session, where: Where, key: str, data: bytes, report: MailReport, now: datetime
) -> bool:
    from flows.people.inbox import read_replies

    before = len(report.recorded)
    read_replies(session, where.name, data, report)
    if len(report.recorded) == before:
        return False
    _remember(session, where, key, REPLY, participant_id=None, message_row=None, now=now)
    return True


# --- delivery status notifications (RFC 3464) ---------------------------------------------


def _is_dsn(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "delivery-status"
    )


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part: the per-message block, then one
    per recipient."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    text = payload if isinstance(payload, str) else ""
    parser = HeaderParser(policy=policy.default)
    return [
        parser.parsestr(b.strip() + "\n") for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()
    ]


def _address(value: object) -> str:
    """``rfc822; Anna@Example.org`` as ``anna@example.org``; '' for another address type."""
    text = str(value or "").strip()
    kind, sep, rest = text.partition(";")
    if sep and kind.strip().lower() not in ("rfc822", "rfc822-headers"):
        return ""
    address = (rest if sep else text).strip().strip("<>").strip()
    return address.lower() if "@" in address else ""


def _returned_ids(message: Message) -> list[str]:
    """The Message-IDs of the original message the notification returns (whole or headers)."""
    found: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        try:
            if kind == "message/rfc822":
                inner = part.get_payload()
                original = inner[0] if isinstance(inner, list) and inner else None
                if isinstance(original, Message):
                    found.append(_raw_header(original, "Message-ID"))
            elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
                raw = part.get_payload(decode=True)
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
                headers = message_from_string(text, policy=policy.default)
                found.append(_raw_header(headers, "Message-ID"))
        except (ValueError, LookupError, TypeError, AttributeError):
            continue  # a header that cannot be read names no message
    return [m for f in found for m in _MESSAGE_ID.findall(f)]


def _raw_header(message: Message, name: str) -> str:
    """A header's text as written (the email package's parsed value can fail on odd ones,
    such as an empty ``Message-ID: <>``)."""
    for key, value in message.raw_items() if hasattr(message, "raw_items") else message.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _ids_in(message: Message, *names: str) -> list[str]:
    """The Message-IDs named in these headers, newest first for References."""
    found: list[str] = []
    for name in names:
        ids = _MESSAGE_ID.findall(_raw_header(message, name))
        found.extend(reversed(ids) if name.lower() == "references" else ids)
    return found


@dataclass(frozen=True)
class _Failure:
    recipient: str  # the original recipient, or the final one
    status: str  # 5.1.1
    permanent: bool
    diagnostic: str


def _failures(message: Message) -> list[_Failure] | str:
    """The recipients the notification says failed or are delayed; or why it cannot be read."""
    parts = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    if not parts:
        return "a delivery report without its message/delivery-status part"
    found: list[_Failure] = []
    for block in _blocks(parts[0])[1:] or _blocks(parts[0]):
        action = str(block.get("Action", "")).strip().lower()
        status = _STATUS.match(str(block.get("Status", "")))
        recipient = _address(block.get("Original-Recipient")) or _address(
            block.get("Final-Recipient")
        )
        if not status and not action:
            continue
        if not status:
            return f"a delivery report whose Status is missing or not a code ({action or '?'})"
        code = ".".join(status.groups())
        if action in ("delivered", "relayed", "expanded") or code.startswith("2"):
            continue  # a success notice: nothing to do
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
        # A final failure is permanent whatever its class: Postfix gives up with 4.4.x when a
        # message has waited out its queue lifetime.
        permanent = code.startswith("5") or action == "failed"
        found.append(_Failure(recipient, code, permanent, diagnostic[:300]))
    return found


def _dsn(
    session: Session,
    where: Where,
    key: str,
    message: Message,
    report: MailReport,
    now: datetime,
    limit: int,
) -> bool:
    failures = _failures(message)
    if isinstance(failures, str):
        report.problems.append(f"{where.name}: {failures}")
        return False
    if not failures:
        report.problems.append(f"{where.name}: a delivery report of no failure (nothing to do)")
        return False
    # The message it reports on: by the Message-ID of the original it returns, else by what
    # it says it answers (In-Reply-To, References, Gmail's X-Original-Message-ID).
    sent, returned = None, True
    for mid in _returned_ids(message):
        sent = queries.sent_message(session, message_id=mid)
        if sent is not None:
            break
    if sent is None:
        returned = False
        blocks = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
        first = _blocks(blocks[0])[:1] if blocks else []
        said = _ids_in(message, "In-Reply-To", "References") + [
            m for b in first for m in _MESSAGE_ID.findall(str(b.get("X-Original-Message-ID", "")))
        ]
        for mid in said:
            sent = queries.sent_message(session, message_id=mid)
            if sent is not None:
                break
    if sent is not None:
        # Only what it says of that message's recipient counts. The original it returns had
        # one recipient, so a rewritten Final-Recipient (an alias) still names it; a message
        # found only by what the report answers must be named.
        about = [f for f in failures if f.recipient in ("", sent.to_key)]
        if not about and returned:
            about = failures
        if not about:
            named = ", ".join(sorted({f.recipient for f in failures}))
            report.problems.append(
                f"{where.name}: a delivery report about {named}, not about the recipient of "
                f"the message it answers (message {pk(sent)})"
            )
            return False
        return _bounce(session, where, key, sent, about, report, now, limit)
    recipients = sorted({f.recipient for f in failures if f.recipient})
    if not recipients:
        report.problems.append(
            f"{where.name}: a delivery report that names neither a message samverkan sent "
            "nor a recipient"
        )
        return False
    # No message named: by the original recipient, to whom samverkan must have sent mail.
    handled = False
    for address in recipients:
        latest = queries.latest_sent_to(session, to_key=address)
        if latest is None:
            report.problems.append(
                f"{where.name}: a delivery report about {address}, to whom samverkan sent "
                "nothing it knows of"
            )
            continue
        mine = [f for f in failures if f.recipient == address]
        # One row per recipient; the report itself is known by the first one's key.
        row_key = f"{key}#{address}" if handled else key
        handled |= _bounce(session, where, row_key, latest, mine, report, now, limit, named=False)
    return handled


def _bounce(
    session: Session,
    where: Where,
    key: str,
    sent: Sent,
    failures: list[_Failure],
    report: MailReport,
    now: datetime,
    limit: int,
    *,
    named: bool = True,
) -> bool:
    """Act on the failures a report gives for the recipient of ``sent``. ``named``: the report
    named that message (else it was found by its recipient, and is only the latest to them)."""
    failure = next((f for f in failures if f.permanent), failures[0])
    about = f" (message {pk(sent)} of cycle {sent.cycle_id})" if named else ""
    if sent.participant_id is None:
        report.problems.append(
            f"{where.name}: a delivery report about {sent.to_email}, who is not in the network "
            "(a copy to the steering group or the coordinator)"
        )
        return False
    person = session.get(Participant, sent.participant_id)
    if person is None or person.erased:
        report.problems.append(f"{where.name}: a delivery report about an erased participant")
        return False
    pid = pk(person)
    if person.email_key != sent.to_key:
        # The address has changed since this message went out: the new one is not dead.
        if failure.permanent and named:
            queries.mark_message_bounced(session, message_row_id=pk(sent), reason=_reason(failure))
        told = (
            f"{sent.to_email}: {_reason(failure)}{about}; the participant's address has "
            "changed since, so their new one is not marked"
        )
        (report.bounced if failure.permanent else report.delayed).append(told)
        _remember(
            session,
            where,
            key,
            BOUNCE if failure.permanent else DELAY,
            participant_id=pid,
            message_row=pk(sent),
            status=failure.status,
            detail="the address has changed since",
            now=now,
        )
        return True
    if failure.permanent:
        if named:
            queries.mark_message_bounced(session, message_row_id=pk(sent), reason=_reason(failure))
        newly = person.bounced_at is None
        if newly:
            person.bounced_at, person.bounce_reason = now, _reason(failure)
            session.add(person)
        queries.audit(
            session,
            cycle_id=sent.cycle_id if named else None,
            action="participant.bounced",
            detail=f"participant {pid}: address bounced ({failure.status})"
            + ("" if newly else ", again"),
        )
        report.bounced.append(f"{person.email}: {_reason(failure)}{about}")
        kind = BOUNCE
    else:
        # Counted once per message: a second warning about the same message is no news.
        counted = named and queries.delay_counted(session, message_row_id=pk(sent))
        if not counted:
            person.soft_bounces += 1
        marked = person.bounced_at is None and person.soft_bounces >= limit
        if marked:
            person.bounced_at = now
            person.bounce_reason = (
                f"{person.soft_bounces} temporary failures, the last {_reason(failure)}"
            )
        session.add(person)
        if not counted:
            queries.audit(
                session,
                cycle_id=sent.cycle_id if named else None,
                action="participant.bounced" if marked else "participant.delayed",
                detail=f"participant {pid}: temporary failure {person.soft_bounces} of {limit} "
                f"({failure.status})" + ("; address marked as bounced" if marked else ""),
            )
        told = f"{person.email}: {_reason(failure)}{about}, {person.soft_bounces} of {limit}"
        if counted:
            told += " (this message was counted already)"
        report.delayed.append(told + ("; address marked as bounced" if marked else ""))
        kind = DELAY
    _remember(
        session,
        where,
        key,
        kind,
        participant_id=pid,
        message_row=pk(sent) if named else None,
        status=failure.status,
        detail=failure.diagnostic,
        now=now,
    )
    return True


def _reason(failure: _Failure) -> str:
    return f"{failure.status} {failure.diagnostic}".strip()[:300]


# --- auto-replies (RFC 3834) ------------------------------------------------------------


def _auto_reply(message: Message) -> str | None:
    """Why this message is an automatic reply, or None."""
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return f"Auto-Submitted: {submitted.split(';')[0]}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.get(header) is not None:
            return header
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return "Precedence: auto_reply"
    if _AUTO_SUBJECTS.match(str(message.get("Subject", ""))):
        return SUBJECT_ONLY
    return None


def _auto(
    session: Session,
    where: Where,
    key: str,
    message: Message,
    why: str,
    report: MailReport,
    now: datetime,
) -> bool:
    if why == SUBJECT_ONLY:
        # People write "Frånvaro" or "Out of office" in subjects of their own: a message that
        # only its subject calls automatic may be a person's answer, so a person reads it.
        report.problems.append(
            f"{where.name}: its subject looks like an out-of-office reply, but no header says "
            "it is automatic (left for the coordinator)"
        )
        return False
    sent = None
    for mid in _ids_in(message, "In-Reply-To", "References"):
        sent = queries.sent_message(session, message_id=mid)
        if sent is not None:
            break
    if sent is None or sent.participant_id is None:
        report.problems.append(
            f"{where.name}: an auto-reply ({why}) to no message samverkan sent to a participant "
            "(left for the coordinator)"
        )
        return False
    try:
        senders = {a.addr_spec.lower() for a in getattr(message["From"], "addresses", ())}
    except (ValueError, LookupError, TypeError, AttributeError):
        senders = set()
    if sent.to_key not in senders:
        report.problems.append(
            f"{where.name}: an auto-reply ({why}) from {', '.join(sorted(senders)) or 'nobody'}"
            f" to message {pk(sent)}, which went to someone else (left for the coordinator)"
        )
        return False
    person = session.get(Participant, sent.participant_id)
    if person is None or person.erased:
        report.problems.append(f"{where.name}: an auto-reply about an erased participant")
        return False
    pid = pk(person)
    queries.audit(
        session,
        cycle_id=sent.cycle_id,
        action="participant.auto_reply",
        detail=f"participant {pid}: an auto-reply to message {pk(sent)} ({why}), not an answer",
    )
    _remember(
        session,
        where,
        key,
        AUTO_REPLY,
        participant_id=pid,
        message_row=pk(sent),
        detail=why,
        now=now,
    )
    report.auto_replies.append(
        f"{person.email} (to message {pk(sent)} of cycle {sent.cycle_id}; {why})"
    )
    return True
