"""The outbox's own queries: claiming ready messages, and recording what became of them.

Every claim is a conditional UPDATE on the status, so two drains racing for the same rows
cannot both win one; on PostgreSQL the rows are first locked with SKIP LOCKED, so several
workers claim disjoint rows without waiting for each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.models import Cycle, Message, MessageStatus, Participant, Stage

READY = (MessageStatus.queued.value, MessageStatus.retry.value)


def ready_message_ids(
    session: Session, *, now: datetime, limit: int, cycle_id: int | None = None
) -> list[int]:
    """Up to ``limit`` messages that may be sent at ``now``, in queue order, locked for this
    transaction where the database can skip rows another one has locked."""
    query = (
        select(Message.id)
        .where(
            col(Message.status).in_(READY),
            or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
        )
        .order_by(col(Message.id))
        .limit(limit)
        # PostgreSQL: several workers claim disjoint rows without waiting for each other.
        # SQLite has one writer at a time, and the conditional UPDATE of the claim decides.
        .with_for_update(skip_locked=True)
    )
    if cycle_id is not None:
        query = query.where(Message.cycle_id == cycle_id)
    return [i for i in session.exec(query).all() if i is not None]


def claim_messages(session: Session, *, ids: Sequence[int], now: datetime) -> list[int]:
    """Mark those of ``ids`` still ready as ``sending``, claimed at ``now``; the ids won.

    The status condition makes the claim safe against a second drain racing for the same
    rows; RETURNING says which rows this one won (two drains given the same ``now`` stamp
    the same claimed_at, so the stamp cannot tell them apart).
    """
    return list(
        session.exec(
            update(Message)
            .where(col(Message.id).in_(ids), col(Message.status).in_(READY))
            .values(status=MessageStatus.sending.value, claimed_at=now)
            .returning(col(Message.id))
        ).scalars()
    )


def without_message_id(session: Session, *, ids: Sequence[int]) -> list[Any]:
    """(id, cycle_id, revision) of those of ``ids`` that have no Message-ID yet."""
    return list(
        session.execute(
            select(Message.id, Message.cycle_id, Message.revision).where(
                col(Message.id).in_(ids), col(Message.message_id).is_(None)
            )
        ).all()
    )


def store_message_ids(session: Session, *, message_ids: Mapping[int, str]) -> None:
    """Give each row its Message-ID (by row id), unless it has one already: one statement."""
    table = Message.__table__  # type: ignore[attr-defined]
    session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.message_id.is_(None))
        .values(message_id=bindparam("new_id")),
        [{"row_id": row_id, "new_id": new_id} for row_id, new_id in message_ids.items()],
    )


def claimed_messages(session: Session, *, ids: Sequence[int]) -> list[Any]:
    """Those of ``ids`` still being sent, in queue order, as plain rows: every column of
    the message, its cycle's name (``cycle_name``) and its participant's language
    (``language``)."""
    columns: list[Any] = [
        *Message.__table__.columns,  # type: ignore[attr-defined]
        col(Cycle.name).label("cycle_name"),
        func.coalesce(col(Message.content_language), col(Participant.language)).label(
            "language"
        ),
    ]
    return list(
        session.execute(
            select(*columns)
            .join(Cycle, col(Cycle.id) == Message.cycle_id)
            .outerjoin(Participant, col(Participant.id) == Message.participant_id)
            .where(col(Message.id).in_(ids), Message.status == MessageStatus.sending.value)
            .order_by(col(Message.id))
        ).all()
    )


def record_outcomes(session: Session, *, rows: Sequence[Mapping[str, object]]) -> None:
    """Update many messages by id in one statement; every row sets the same columns."""
    session.execute(update(Message), rows)


def mark_claimed_before_uncertain(session: Session, *, cutoff: datetime, why: str) -> int:
    """Messages claimed before ``cutoff`` and still ``sending`` become ``uncertain``, saying
    ``why``; how many did."""
    result = session.exec(
        update(Message)
        .where(col(Message.status) == MessageStatus.sending.value, col(Message.claimed_at) < cutoff)
        .values(status=MessageStatus.uncertain.value, last_error=why)
    )
    return int(result.rowcount or 0)


def requeue_uncertain(session: Session, *, cycle_id: int) -> int:
    """Queue the cycle's uncertain messages again, to be sent at once; how many there were."""
    result = session.exec(
        update(Message)
        .where(
            col(Message.cycle_id) == cycle_id,
            col(Message.status) == MessageStatus.uncertain.value,
        )
        .values(status=MessageStatus.queued.value, next_attempt_at=None)
    )
    return int(result.rowcount or 0)


def cycle_messages(
    session: Session,
    *,
    cycle_id: int,
    statuses: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Any]:
    """The cycle's messages (of ``statuses``, if given) in order, ``limit`` from ``offset``:
    rows of what the coordinator reads of each (never the bodies, which are most of a
    message's bytes), and the stage's key as ``key``."""
    # SQLModel's select types at most four columns: SQLAlchemy's own for nine.
    query = (
        sa_select(
            col(Message.id),
            col(Stage.key),
            col(Message.to_email),
            col(Message.status),
            col(Message.attempts),
            col(Message.category),
            col(Message.sent_at),
            col(Message.last_error),
            col(Message.server_reply),
        )
        .join(Stage, col(Stage.id) == Message.stage_id)
        .where(col(Message.cycle_id) == cycle_id)
        .order_by(col(Message.id))
    )
    if statuses:
        query = query.where(col(Message.status).in_(statuses))
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return list(session.execute(query).all())


def cycle_status_counts(session: Session, *, cycle_id: int) -> dict[str, int]:
    """How many of the cycle's messages have each status."""
    rows = session.exec(
        select(Message.status, func.count())
        .where(Message.cycle_id == cycle_id)
        .group_by(col(Message.status))
    ).all()
    return {str(status): int(n) for status, n in rows}


def any_ready_message(session: Session, *, now: datetime, cycle_id: int | None = None) -> bool:
    """Whether any message may be sent at ``now`` (of one cycle, or of all)."""
    query = select(Message.id).where(
        col(Message.status).in_(READY),
        or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
    )
    if cycle_id is not None:
        query = query.where(Message.cycle_id == cycle_id)
    return session.exec(query.limit(1)).first() is not None


def release_claims(session: Session, *, ids: Sequence[int]) -> None:
    """Claimed messages never handed over go back as they were: ``retry`` if they had been
    tried before, else ``queued``, with no claim a later drain could take for a crash."""
    session.exec(
        update(Message)
        .where(col(Message.id).in_(ids), col(Message.status) == MessageStatus.sending.value)
        .values(
            status=case(
                (col(Message.attempts) > 0, MessageStatus.retry.value),
                else_=MessageStatus.queued.value,
            ),
            claimed_at=None,
        )
    )
