"""Calendar replies (iMIP METHOD:REPLY) from participants' calendar programs.

``samverkan inbox import PATH`` reads ``.eml`` or ``.ics`` files, a folder of them, or a
Maildir, and records each attendee's PARTSTAT on the meeting. A reply is matched on the
meeting's UID and the attendee's address (case-insensitively); one with a SEQUENCE below the
meeting's current one answers an out-of-date invitation and is not recorded. Nothing is
guessed: unknown meetings and attendees are reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from icalendar import Calendar, Component
from sqlalchemy import Engine
from sqlmodel import Session, select

from flows.answers import save_rsvp
from flows.wording import plural
from store import queries
from store.db import session_scope
from store.errors import InvalidInput
from store.models import Meeting, PartStat, pk

ANSWERS = {PartStat.accepted.value, PartStat.declined.value, PartStat.tentative.value}


@dataclass
class InboxReport:
    files: int = 0
    recorded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"read {plural(self.files, 'file')}: "
            f"{plural(len(self.recorded), 'reply', 'replies')} recorded, "
            f"{len(self.problems)} not recorded"
        ]
        out += [f"  recorded: {r}" for r in self.recorded]
        out += [f"  not recorded: {p}" for p in self.problems]
        return out


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


def _calendars(data: bytes) -> Iterator[str]:
    """The calendar texts in a file: the file itself, or the calendar parts of an email."""
    if data.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
        yield data.decode("utf-8", errors="replace")
        return
    message = message_from_bytes(data, policy=policy.default)
    for part in message.walk():
        name = (part.get_filename() or "").lower()
        if part.get_content_type() in {"text/calendar", "application/ics"} or name.endswith(".ics"):
            content = part.get_content()
            yield (
                content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
            )


def import_replies(engine: Engine, path: Path) -> InboxReport:
    report = InboxReport()
    files = _files(Path(path))
    with session_scope(engine) as session:
        for file in files:
            report.files += 1
            try:
                texts = list(_calendars(file.read_bytes()))
            except (OSError, ValueError, LookupError) as exc:
                report.problems.append(f"{file.name}: unreadable ({exc})")
                continue
            if not texts:
                report.problems.append(f"{file.name}: no calendar part")
            for text in texts:
                try:
                    cal = Calendar.from_ical(text)
                except ValueError as exc:
                    report.problems.append(f"{file.name}: not a valid calendar ({exc})")
                    continue
                method = str(cal.get("METHOD", "")).upper()
                if method != "REPLY":
                    report.problems.append(f"{file.name}: METHOD:{method or 'none'}, not a reply")
                    continue
                for event in cal.walk("VEVENT"):
                    report_one(session, file.name, event, report)
    return report


def report_one(session: Session, name: str, event: Component, report: InboxReport) -> None:
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
    meeting = session.exec(select(Meeting).where(Meeting.uid == uid)).first()
    if meeting is None:
        report.problems.append(f"{name}: unknown meeting UID {uid or '(none)'} (from {address})")
        return
    sequence = int(event.get("SEQUENCE", 0))
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
