"""What the right of access reads about one person, and what their erasure reads and changes.

Erasure looks for a person's address and name in free text. SQLite's ``lower()`` lowers ASCII
only, so SQL can narrow a search but cannot be trusted to find every mention: the tables a
coordinator types into are read whole (``every_…``) and searched row by row by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from store.models import (
    AccessToken,
    AuditEntry,
    Cycle,
    CycleMember,
    Meeting,
    MeetingAttendee,
    Message,
    MessageStatus,
    Response,
    SignoffComment,
    SignoffVariant,
    Stage,
)


def _to_person(participant_id: int, email_key: str) -> Any:
    """Messages to them: as a participant, or at their address (a steering-group copy)."""
    return (col(Message.participant_id) == participant_id) | (col(Message.to_key) == email_key)


def cycles_joined(
    session: Session, *, participant_id: int
) -> list[tuple[int | None, str, datetime]]:
    """(cycle id, name, when they were added) of every cycle the person is a member of."""
    rows = session.exec(
        select(Cycle.id, Cycle.name, CycleMember.added_at)
        .join(CycleMember, col(CycleMember.cycle_id) == Cycle.id)
        .where(CycleMember.participant_id == participant_id)
    ).all()
    return [(c, n, a) for c, n, a in rows]


def messages_to(session: Session, *, participant_id: int, email_key: str) -> list[Message]:
    """Every message to the person or to their address, oldest first."""
    return list(
        session.exec(
            select(Message).where(_to_person(participant_id, email_key)).order_by(col(Message.id))
        ).all()
    )


def answers_by(session: Session, *, participant_id: int) -> list[Response]:
    """Every answer the person gave, oldest first."""
    return list(
        session.exec(
            select(Response)
            .where(Response.participant_id == participant_id)
            .order_by(col(Response.id))
        ).all()
    )


def meeting_answers_by(session: Session, *, participant_id: int) -> list[MeetingAttendee]:
    """The person's invitations to meetings, with their answers."""
    return list(
        session.exec(
            select(MeetingAttendee).where(MeetingAttendee.participant_id == participant_id)
        ).all()
    )


def audit_entries_naming(session: Session, *, email: str, participant_id: int) -> list[AuditEntry]:
    """Audit entries whose detail names the person by address or by participant number."""
    return list(
        session.exec(
            select(AuditEntry).where(
                col(AuditEntry.detail).contains(email)
                | col(AuditEntry.detail).contains(f"participant {participant_id}:")
            )
        ).all()
    )


def written_answers_by(session: Session, *, participant_id: int) -> list[str | None]:
    """The text of every written answer the person gave."""
    return list(
        session.exec(
            select(Response.text).where(
                col(Response.participant_id) == participant_id, col(Response.text).is_not(None)
            )
        ).all()
    )


def drop_messages_to(
    session: Session, *, participant_id: int, email_key: str, statuses: Sequence[str]
) -> int:
    """Mark the messages to the person in one of ``statuses`` dropped; how many were."""
    result = session.exec(
        update(Message)
        .where(_to_person(participant_id, email_key), col(Message.status).in_(statuses))
        .values(status=MessageStatus.dropped.value)
    )
    return int(result.rowcount)


def count_messages_to_key(session: Session, *, to_key: str) -> int:
    """How many messages are addressed to ``to_key``."""
    return int(
        session.exec(
            select(func.count()).select_from(Message).where(col(Message.to_key) == to_key)
        ).one()
    )


def messages_that_may_mention(
    session: Session,
    *,
    lowered: Sequence[str],
    exact: Sequence[str],
    columns: Sequence[str],
    excluding_to_key: str,
) -> list[Message]:
    """Messages not addressed to ``excluding_to_key`` with an attachment, or whose
    ``columns`` hold one of ``exact`` or, lowered, one of ``lowered``.

    SQLite lowers ASCII only, so this may miss a name written in other capitals: the caller
    checks every row it gets, and every attachment (a stored report) is read.
    """
    fields = [getattr(Message, c) for c in columns]
    mentioned = or_(
        *(func.lower(c).contains(n) for c in fields for n in lowered),
        *(c.contains(v) for c in fields for v in exact),
    )
    mentioned = mentioned | col(Message.attachment).is_not(None)
    return list(
        session.exec(
            select(Message).where(mentioned, col(Message.to_key) != excluding_to_key)
        ).all()
    )


def clear_written_answers(session: Session, *, participant_id: int) -> int:
    """Empty the text of the person's written answers (their scale answers stay); how many."""
    result = session.exec(
        update(Response)
        .where(col(Response.participant_id) == participant_id, col(Response.text).is_not(None))
        .values(text=None)
    )
    return int(result.rowcount)


def delete_access_tokens(session: Session, *, participant_id: int) -> None:
    """Remove the person's personal links."""
    session.exec(delete(AccessToken).where(col(AccessToken.participant_id) == participant_id))


def every_audit_entry(session: Session) -> list[AuditEntry]:
    """The whole audit log, to be searched row by row."""
    return list(session.exec(select(AuditEntry)).all())


def every_stage(session: Session) -> list[Stage]:
    """Every stage of every cycle, to be searched row by row."""
    return list(session.exec(select(Stage)).all())


def every_meeting(session: Session) -> list[Meeting]:
    """Every meeting, to be searched row by row."""
    return list(session.exec(select(Meeting)).all())


def every_cycle(session: Session) -> list[Cycle]:
    """Every cycle, to be searched row by row."""
    return list(session.exec(select(Cycle)).all())


def every_signoff_text(session: Session) -> list[SignoffVariant | SignoffComment]:
    """Every text kept for sign-off (what was signed, and the comment threads)."""
    return [
        *session.exec(select(SignoffVariant)).all(),
        *session.exec(select(SignoffComment)).all(),
    ]
