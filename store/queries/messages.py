"""Messages in the outbox, as the coordinator's views count them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.models import Message, MessageStatus, Organisation, Participant


def ready_messages(session: Session, *, now: datetime) -> int:
    """How many messages wait in the outbox and may be sent at ``now``."""
    return int(
        session.exec(
            select(func.count())
            .select_from(Message)
            .where(
                col(Message.status).in_([MessageStatus.queued.value, MessageStatus.retry.value]),
                or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
            )
        ).one()
    )


# The category of the emails about sign-off (to signers and the coordinator): kept under the
# stage they are about, but not among the stage's own messages.
SIGNOFF = "signoff"


def message_counts(session: Session, *, cycle_id: int) -> dict[int, dict[str, int]]:
    """Messages of a cycle by stage id and status."""
    rows = session.exec(
        select(Message.stage_id, Message.status, func.count())
        .where(Message.cycle_id == cycle_id, Message.category != SIGNOFF)
        .group_by(col(Message.stage_id), col(Message.status))
    ).all()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for stage_id, status, n in rows:
        counts[stage_id][str(status)] = n
    return dict(counts)


def insert_messages(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Put many messages in the outbox in one statement (``rows`` hold every column)."""
    session.execute(insert(Message.__table__), rows)  # type: ignore[attr-defined]


def messages_of_stage(session: Session, *, stage_id: int) -> list[Message]:
    """Every message a stage wrote, in queue order."""
    return list(
        session.exec(
            select(Message).where(Message.stage_id == stage_id).order_by(col(Message.id))
        ).all()
    )


def stage_recipients(session: Session, *, stage_id: int) -> list[Any]:
    """Who a stage's messages go to, without the messages' bodies: rows of the message id,
    name, address, subject, status, whether it has a calendar part, the language it is
    written in (the person's, for messages from before that was kept), the person's role and
    organisation, in queue order."""
    query: Any = (
        sa_select(
            col(Message.id),
            col(Message.to_name),
            col(Message.to_email),
            col(Message.to_key),
            col(Message.subject),
            col(Message.status),
            col(Message.ics).is_not(None).label("has_ics"),
            func.coalesce(col(Message.content_language), col(Participant.language)).label(
                "language"
            ),
            col(Participant.role),
            col(Organisation.name).label("organisation"),
        )
        .outerjoin(Participant, col(Participant.id) == col(Message.participant_id))
        .outerjoin(Organisation, col(Organisation.id) == col(Participant.organisation_id))
        .where(col(Message.stage_id) == stage_id, col(Message.category) != SIGNOFF)
        .order_by(col(Message.id))
    )
    return list(session.execute(query).all())


def queue_drafts(session: Session, *, stage_id: int) -> int:
    """Queue the stage's drafts for sending (they were approved); how many there were."""
    result = session.exec(
        update(Message)
        .where(
            col(Message.stage_id) == stage_id,
            col(Message.status) == MessageStatus.draft.value,
        )
        .values(status=MessageStatus.queued.value)
    )
    return int(result.rowcount)


def drop_stage_messages(session: Session, *, stage_id: int, statuses: Sequence[str]) -> int:
    """Mark the stage's messages in one of ``statuses`` dropped; how many were."""
    result = session.exec(
        update(Message)
        .where(col(Message.stage_id) == stage_id, col(Message.status).in_(statuses))
        .values(status=MessageStatus.dropped.value)
    )
    return int(result.rowcount)


def undelivered(session: Session, *, cycle_id: int) -> list[tuple[str, str | None, int]]:
    """(address, error, stage id) of the cycle's messages that failed or are uncertain."""
    rows = session.exec(
        select(Message.to_email, Message.last_error, Message.stage_id).where(
            Message.cycle_id == cycle_id,
            col(Message.status).in_([MessageStatus.failed.value, MessageStatus.uncertain.value]),
        )
    ).all()
    return list(rows)


def drop_waiting_messages_of(
    session: Session, *, participant_id: int, statuses: Sequence[str], why: str
) -> int:
    """Mark the participant's messages in one of ``statuses`` dropped, saying ``why``; how
    many were."""
    result = session.exec(
        update(Message)
        .where(col(Message.participant_id) == participant_id, col(Message.status).in_(statuses))
        .values(status=MessageStatus.dropped.value, last_error=why)
    )
    return int(result.rowcount or 0)
