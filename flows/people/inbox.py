"""Calendar replies (iMIP METHOD:REPLY) from participants' calendar programs.

``samverkan inbox import PATH`` reads ``.eml`` or ``.ics`` files, a folder of them, or a
Maildir: each message goes to flows/people/mailbox.py, which sends calendar replies here, and
reads delivery reports and auto-replies itself. A reply records the attendee's PARTSTAT on the
meeting. It is matched on the meeting's UID and the attendee's address (case-insensitively);
one with a SEQUENCE below the meeting's current one answers an out-of-date invitation and is
not recorded. Nothing is guessed: unknown meetings and attendees are reported, and so is a
reply that came in an email from someone other than the attendee it answers for. A file that
cannot be read is one line of the report; the other files are read all the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from icalendar import Calendar, Component
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session

from flows.people.answers import save_rsvp
from flows.people.mailbox import MailReport, Where, handle
from store import queries
from store.db import session_scope
from store.errors import InvalidInput
from store.models import PartStat, pk
from store.types import utcnow

ANSWERS = {PartStat.accepted.value, PartStat.declined.value, PartStat.tentative.value}

# What ``inbox import`` reported before it read more than replies; the same report.
InboxReport = MailReport


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InvalidInput(f"no such file or folder: {path}")
    if (path / "new").is_dir() or (path / "cur").is_dir():  # a Maildir
        return sorted(
            p
            for sub in ("new", "cur")
            if (path / sub).is_dir()
            for p in (path / sub).iterdir()
            if p.is_file()
        )
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in {".eml", ".ics"})


@dataclass(frozen=True)
class _Read:
    texts: list[str]  # the calendars in the file
    senders: frozenset[str] | None = None  # the email's From addresses; None for an .ics


def _read(data: bytes) -> _Read:
    """The calendar texts in a file (the file itself, or the calendar parts of an email)."""
    if data.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
        return _Read([data.decode("utf-8", errors="replace")])
    message = cast(EmailMessage, message_from_bytes(data, policy=policy.default))
    senders = None
    if message["From"] is not None:
        addresses = getattr(message["From"], "addresses", ())
        senders = frozenset(a.addr_spec.lower() for a in addresses if a.addr_spec)
    return _Read(list(calendars(message)), senders)


def calendars(message: EmailMessage) -> Iterator[str]:
    """The calendar parts of an email, as text."""
    for part in message.walk():
        name = (part.get_filename() or "").lower()
        if part.get_content_type() in {"text/calendar", "application/ics"} or name.endswith(".ics"):
            content = part.get_content()
            yield (
                content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
            )


def import_replies(
    engine: Engine,
    path: Path,
    *,
    soft_bounce_limit: int = 3,
    now: datetime | None = None,
) -> MailReport:
    """Read every message of a file, a folder of ``.eml``/``.ics`` files or a Maildir: calendar
    replies, delivery reports and auto-replies (flows/people/mailbox.py), each in its own
    transaction, so that one that cannot be read is one line of the report."""
    report = MailReport()
    files = _files(Path(path))
    when = now or utcnow()
    for file in files:
        report.files += 1
        try:
            data = file.read_bytes()
        except OSError as exc:
            report.problems.append(f"{file.name}: unreadable ({one_line(exc)})")
            continue
        try:
            with session_scope(engine) as session:
                handle(
                    session,
                    Where(file.name),
                    data,
                    report,
                    now=when,
                    soft_bounce_limit=soft_bounce_limit,
                )
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            report.problems.append(
                f"{file.name}: could not be handled ({type(exc).__name__}: {one_line(exc)})"
            )
    return report


def read_replies(session: Session, name: str, data: bytes, report: MailReport) -> None:
    """Record the calendar replies in one file or email (each problem one line of ``report``)."""
    try:
        read = _read(data)
    except BROKEN as exc:
        report.problems.append(f"{name}: unreadable ({one_line(exc)})")
        return
    if read.senders is not None and not read.senders:
        report.problems.append(f"{name}: its From address cannot be read")
        return
    if not read.texts:
        report.problems.append(f"{name}: no calendar part")
    for text in read.texts:
        try:
            cal = Calendar.from_ical(text)
            method = str(cal.get("METHOD", "")).upper()
        except BROKEN as exc:
            report.problems.append(f"{name}: not a valid calendar ({one_line(exc)})")
            continue
        if method != "REPLY":
            report.problems.append(f"{name}: METHOD:{method or 'none'}, not a reply")
            continue
        for event in cal.walk("VEVENT"):
            try:
                report_one(session, name, event, report, senders=read.senders)
            except BROKEN as exc:
                report.problems.append(f"{name}: not a valid reply ({one_line(exc)})")


# What a malformed file or property raises while it is read (never a database error).
BROKEN = (ValueError, LookupError, TypeError, AttributeError)


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def report_one(
    session: Session,
    name: str,
    event: Component,
    report: MailReport,
    *,
    senders: frozenset[str] | None = None,
) -> None:
    uid = str(event.get("UID", ""))
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees] if attendees else []
    if len(attendees) != 1:
        report.problems.append(
            f"{name}: a reply must name exactly one attendee, not {len(attendees)}"
        )
        return
    attendee = attendees[0]
    address = str(attendee)
    address = address[7:] if address.lower().startswith("mailto:") else address
    address = address.strip().lower()
    partstat = str(attendee.params.get("PARTSTAT", "")).upper()
    if partstat not in ANSWERS:
        report.problems.append(
            f"{name}: {address}: PARTSTAT {partstat or 'missing'} is not an answer"
        )
        return
    if senders is not None and address not in senders:
        report.problems.append(
            f"{name}: sent by {', '.join(sorted(senders))}, not by the attendee {address}"
        )
        return
    meeting = queries.meeting_by_uid(session, uid=uid)
    if meeting is None:
        report.problems.append(f"{name}: unknown meeting UID {uid or '(none)'} (from {address})")
        return
    raw_sequence = str(event.get("SEQUENCE", 0)).strip()
    if not (raw_sequence.isascii() and raw_sequence.isdigit()):
        report.problems.append(f"{name}: {address}: SEQUENCE {raw_sequence!r} is not a number")
        return
    sequence = int(raw_sequence)
    if sequence < meeting.sequence:
        report.problems.append(
            f"{name}: {address} answered an out-of-date invitation "
            f"(SEQUENCE {sequence}, current {meeting.sequence})"
        )
        return
    if meeting.cancelled:
        report.problems.append(f"{name}: {address} answered a cancelled meeting")
        return
    person = queries.find_participant(session, email=address)
    invited = queries.partstats(session, meeting_id=pk(meeting))
    if person is None or person.id not in invited:
        report.problems.append(f"{name}: {address} was not invited to this meeting")
        return
    stages = queries.stages_of(session, cycle_id=meeting.cycle_id)
    key = next((s.key for s in stages if s.id == meeting.stage_id), "")
    save_rsvp(
        session,
        meeting_id=pk(meeting),
        participant_id=pk(person),
        partstat=partstat,
        cycle_id=meeting.cycle_id,
        stage_key=key,
        how="calendar reply",
    )
    report.recorded.append(f"{address}: {partstat} for {key} of cycle {meeting.cycle_id}")
