"""Right of access and right to erasure for one participant.

``export_person`` gathers everything stored about a person. ``erase_person`` removes their
personal data — name, email, free-text answers, the text of messages to them, their personal
links, and every mention of their address, name or words elsewhere (the transport's replies,
stored reflection reports, the steering list, audience filters, the audit log) — while their
organisation, role and scale answers stay as anonymous numbers in the indicators. An erased
person gets no further mail: they are left out of every stage, and messages to them still
waiting in the outbox are dropped. tests/store/test_erasure.py checks this by dumping the store.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from flows.reporting.report import redact_words
from store import queries
from store.db import forget_freed_pages, session_scope
from store.errors import NotFound
from store.models import MessageStatus, Organisation, Participant, pk
from store.types import utcnow

ERASED = "[erased]"
WAITING = [MessageStatus.draft.value, MessageStatus.queued.value, MessageStatus.retry.value]


def _person(session: Session, email: str) -> Participant:
    person = queries.find_participant(session, email=email)
    if person is None or person.erased:
        raise NotFound(f"no participant with email {email}")
    return person


def export_person(engine: Engine, *, email: str) -> dict[str, Any]:
    """Everything stored about one person, as plain data (for JSON)."""
    with Session(engine) as session:
        p = _person(session, email)
        org = session.get(Organisation, p.organisation_id)
        pid = pk(p)
        cycles = queries.cycles_joined(session, participant_id=pid)
        messages = queries.messages_to(session, participant_id=pid, email_key=p.email_key)
        answers = queries.answers_by(session, participant_id=pid)
        rsvps = queries.meeting_answers_by(session, participant_id=pid)
        mentioned = queries.audit_entries_naming(session, email=p.email, participant_id=pid)
        found = {
            "participant": {
                "name": p.name,
                "email": p.email,
                "organisation": org.name if org else None,
                "role": str(p.role),
                "language": str(p.language),
                "consent": p.consent,
                "bounced": p.bounced_at.isoformat() if p.bounced_at else None,
                "bounce_reason": p.bounce_reason,
                "temporary_failures": p.soft_bounces,
                "created_at": p.created_at.isoformat(),
                "updated_at": p.updated_at.isoformat(),
            },
            "cycles": [{"id": c, "name": n, "added_at": a.isoformat()} for c, n, a in cycles],
            "messages": [
                {
                    "cycle": m.cycle_id,
                    "subject": m.subject,
                    "status": str(m.status),
                    "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                    "text": m.text,
                }
                for m in messages
            ],
            "answers": [
                {
                    "cycle": r.cycle_id,
                    "question": r.question_id,
                    "scale": r.scale_value,
                    "text": r.text,
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in answers
            ],
            "meeting_answers": [
                {"meeting": a.meeting_id, "answer": str(a.partstat)} for a in rsvps
            ],
            "mailbox": [
                {
                    "kind": m.kind,
                    "status": m.status,
                    "detail": m.detail,
                    "handled_at": m.handled_at.isoformat(),
                }
                for m in queries.inbox_messages_about(session, participant_id=pid)
            ],
            "audit": [
                {"at": e.at.isoformat(), "action": e.action, "detail": e.detail} for e in mentioned
            ],
        }
        # Who took a copy of a person's data is kept (by number: erasure finds it there).
        queries.audit(
            session,
            cycle_id=None,
            action="participant.export",
            detail=f"participant {pid}: exported",
        )
        session.commit()
        return found


class _Scrub:
    """Replaces a person's address and name in free text, whatever their case."""

    def __init__(self, address: str, name: str, placeholder: str) -> None:
        found = [(address, placeholder)]
        if name.strip() and name != ERASED:
            found.append((name.strip(), ERASED))
        # As an HTML report quotes them (an apostrophe in a name, say).
        found += [(html.escape(v), r) for v, r in found if html.escape(v) != v]
        # Whole words only, erasing "Ann" must leave "planning" as it is; but a name in the
        # genitive ("Annas", "Sara Ahmadis kontor") is still theirs.
        self.patterns = [
            (re.compile(rf"(?<!\w){re.escape(v)}(?=s?(?!\w))", re.IGNORECASE), r) for v, r in found
        ]
        self.values = [v for v, _ in found]
        self.needles = [v.lower() for v, _ in found]

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for pattern, replacement in self.patterns:
            text = pattern.sub(replacement, text)
        return text

    def finds(self, *texts: str | None) -> bool:
        return any(p.search(t) for t in texts if t for p, _ in self.patterns)


MESSAGE_TEXT = (
    "to_email",
    "to_name",
    "subject",
    "text",
    "html",
    "ics",
    "attachment",
    "attachment_name",
    "server_reply",
    "last_error",
)


def _scrub_values(values: dict[str, Any] | None, scrub: _Scrub) -> dict[str, Any] | None:
    """A JSON column's text values scrubbed (a cycle's variables, a stage's settings)."""
    if not values:
        return values
    return {k: scrub(v) if isinstance(v, str) else v for k, v in values.items()}


def erase_person(engine: Engine, *, email: str, reason: str | None = None) -> dict[str, int]:
    """Remove a person's personal data; keep their scale answers as anonymous numbers.

    Searched for wherever samverkan writes free text, not only in the person's own rows: the
    transport's replies and errors, the stored reflection reports that quote their words,
    the steering list, audience filters, stage notes and the audit log.
    """
    with session_scope(engine) as session:
        p = _person(session, email)
        pid, key = pk(p), p.email_key
        placeholder = f"erased-{pid}@invalid"
        scrub = _Scrub(p.email, p.name, placeholder)
        words = [
            t for t in queries.written_answers_by(session, participant_id=pid) if t and t.strip()
        ]
        # Messages to them: as a participant, or at their address (a steering-group copy).
        dropped = queries.drop_messages_to(
            session, participant_id=pid, email_key=key, statuses=WAITING
        )
        own = queries.messages_to(session, participant_id=pid, email_key=key)
        # Addresses they had before (a new one by previous_email): a delivery report about
        # an old one quotes it, in the message's error and in what the mailbox kept.
        olds = [_Scrub(k, "", placeholder) for k in {m.to_key for m in own} - {key} if k]
        for m in own:
            for old in olds:
                m.server_reply, m.last_error = old(m.server_reply), old(m.last_error)
            m.to_email = m.to_key = placeholder
            m.to_name = m.subject = m.text = m.html = ERASED
            m.ics = m.attachment = m.attachment_name = None
            m.server_reply, m.last_error = scrub(m.server_reply), scrub(m.last_error)
            session.add(m)
        scrubbed = queries.count_messages_to_key(session, to_key=placeholder)
        # Everybody else's messages: the reports that quote their words, any mention. SQL
        # only narrows the search (SQLite lowers ASCII only); every row found is scrubbed.
        # The reflection reports (one per recipient and reflection) may quote their words,
        # or a reason typed with their name in any capitals: every one is read.
        others = queries.messages_that_may_mention(
            session,
            lowered=scrub.needles,
            exact=scrub.values,
            columns=MESSAGE_TEXT,
            excluding_to_key=placeholder,
        )
        for m in others:
            if m.attachment and words:  # first: an answer may hold their own name
                m.attachment = redact_words(m.attachment, words, ERASED)
            for name in MESSAGE_TEXT:
                setattr(m, name, scrub(getattr(m, name)))
            session.add(m)
        texts = queries.clear_written_answers(session, participant_id=pid)
        queries.delete_access_tokens(session, participant_id=pid)
        # The audit log and the stages hold text a coordinator typed: every row is read,
        # since a name may be written in any capitals.
        for entry in queries.every_audit_entry(session):
            if scrub.finds(entry.detail, entry.reason):
                entry.detail = scrub(entry.detail) or ""
                entry.reason = scrub(entry.reason)
                session.add(entry)
        # An audience names people only by address (`email=…`): a name there is an
        # organisation's, which must keep matching.
        by_address = _Scrub(p.email, "", placeholder)
        for stage in queries.every_stage(session):
            config = _scrub_values(stage.config, scrub)
            if (
                by_address.finds(stage.audience)
                or scrub.finds(stage.note)
                or config != stage.config
            ):
                stage.audience = by_address(stage.audience) or "all"
                stage.note, stage.config = scrub(stage.note), config or {}
                session.add(stage)
        # What signers read and wrote: the texts as signed (a variable may name the person)
        # and the comment threads.
        for row in queries.every_signoff_text(session):
            fields = [f for f in ("subject", "text", "html", "calendar") if hasattr(row, f)]
            if scrub.finds(*(getattr(row, f) for f in fields)):
                for f in fields:
                    setattr(row, f, scrub(getattr(row, f)) or "")
                session.add(row)
        for meeting_row in queries.every_meeting(session):
            if scrub.finds(meeting_row.summary, meeting_row.location):
                meeting_row.summary = scrub(meeting_row.summary) or ""
                meeting_row.location = scrub(meeting_row.location) or ""
                session.add(meeting_row)
        for cycle in queries.every_cycle(session):
            kept = [e for e in cycle.steering or [] if e.lower() != key]
            variables = _scrub_values(cycle.variables, scrub)
            if kept != list(cycle.steering or []) or variables != cycle.variables:
                cycle.steering, cycle.variables = kept, variables or {}
                session.add(cycle)
        # What the mailbox held about them: a diagnostic or a file's name may hold the address.
        for read in queries.every_inbox_message(session):
            if read.participant_id == pid:
                read.detail, read.source = "", placeholder if not read.uid else read.source
                session.add(read)
            elif scrub.finds(read.detail, read.source):
                read.detail = scrub(read.detail) or ""
                read.source = scrub(read.source) or ""
                session.add(read)
        p.name, p.email, p.email_key = ERASED, placeholder, placeholder
        p.bounce_reason = None
        p.erased, p.consent, p.updated_at = True, False, utcnow()
        session.add(p)
        queries.audit(
            session,
            cycle_id=None,
            action="participant.erase",
            detail=f"participant {pid}: {texts} written answers and {scrubbed} "
            f"messages cleared, {dropped} unsent messages dropped",
            reason=scrub(reason),
        )
    emptied = forget_freed_pages(engine)
    return {
        "messages": scrubbed,
        "dropped": dropped,
        "written_answers": texts,
        "log_emptied": emptied,
    }
