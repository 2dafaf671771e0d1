"""Right of access and right to erasure for one participant.

``export_person`` gathers everything stored about a person. ``erase_person`` removes their
personal data — name, email, free-text answers, the text of messages to them, their personal
links — while their organisation, role and scale answers stay as anonymous numbers in the
indicators. An erased person gets no further mail: they are left out of every stage, and
messages to them still waiting in the outbox are dropped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from store import queries
from store.db import session_scope
from store.errors import NotFound
from store.models import (
    AccessToken,
    AuditEntry,
    Cycle,
    CycleMember,
    MeetingAttendee,
    Message,
    MessageStatus,
    Organisation,
    Participant,
    Response,
    pk,
)
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
        cycles = session.exec(
            select(Cycle.id, Cycle.name, CycleMember.added_at)
            .join(CycleMember, col(CycleMember.cycle_id) == Cycle.id)
            .where(CycleMember.participant_id == pid)
        ).all()
        messages = session.exec(
            select(Message).where(Message.participant_id == pid).order_by(col(Message.id))
        ).all()
        answers = session.exec(
            select(Response).where(Response.participant_id == pid).order_by(col(Response.id))
        ).all()
        rsvps = session.exec(select(MeetingAttendee).where(MeetingAttendee.participant_id == pid))
        mentioned = session.exec(
            select(AuditEntry).where(
                col(AuditEntry.detail).contains(p.email)
                | col(AuditEntry.detail).contains(f"participant {pid}:")
            )
        ).all()
        return {
            "participant": {
                "name": p.name,
                "email": p.email,
                "organisation": org.name if org else None,
                "role": str(p.role),
                "language": str(p.language),
                "consent": p.consent,
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
            "audit": [
                {"at": e.at.isoformat(), "action": e.action, "detail": e.detail} for e in mentioned
            ],
        }


def erase_person(engine: Engine, *, email: str, reason: str | None = None) -> dict[str, int]:
    """Remove a person's personal data; keep their scale answers as anonymous numbers."""
    with session_scope(engine) as session:
        p = _person(session, email)
        pid, address = pk(p), p.email
        dropped = session.exec(
            update(Message)
            .where(col(Message.participant_id) == pid, col(Message.status).in_(WAITING))
            .values(status=MessageStatus.dropped.value)
        ).rowcount
        scrubbed = session.exec(
            update(Message)
            .where(col(Message.participant_id) == pid)
            .values(
                to_email=f"erased-{pid}@invalid",
                to_key=f"erased-{pid}@invalid",
                to_name=ERASED,
                subject=ERASED,
                text=ERASED,
                html=ERASED,
                ics=None,
            )
        ).rowcount
        texts = session.exec(
            update(Response)
            .where(col(Response.participant_id) == pid, col(Response.text).is_not(None))
            .values(text=None)
        ).rowcount
        session.exec(delete(AccessToken).where(col(AccessToken.participant_id) == pid))
        for entry in session.exec(
            select(AuditEntry).where(col(AuditEntry.detail).contains(address))
        ):
            entry.detail = entry.detail.replace(address, f"participant {pid}")
            session.add(entry)
        p.name, p.email, p.email_key = ERASED, f"erased-{pid}@invalid", f"erased-{pid}@invalid"
        p.erased, p.consent, p.updated_at = True, False, utcnow()
        session.add(p)
        queries.audit(
            session,
            cycle_id=None,
            action="participant.erase",
            detail=f"participant {pid}: {texts} written answers and {scrubbed} "
            f"messages cleared, {dropped} unsent messages dropped",
            reason=reason,
        )
        return {"messages": scrubbed, "dropped": dropped, "written_answers": texts}
