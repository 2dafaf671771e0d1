"""Messages in the outbox, as the coordinator's views count them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_
from sqlmodel import Session, col, select

from store.models import Message, MessageStatus


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


def message_counts(session: Session, *, cycle_id: int) -> dict[int, dict[str, int]]:
    """Messages of a cycle by stage id and status."""
    rows = session.exec(
        select(Message.stage_id, Message.status, func.count())
        .where(Message.cycle_id == cycle_id)
        .group_by(col(Message.stage_id), col(Message.status))
    ).all()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for stage_id, status, n in rows:
        counts[stage_id][str(status)] = n
    return dict(counts)


def insert_messages(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Put many messages in the outbox in one statement (``rows`` hold every column)."""
    session.execute(insert(Message.__table__), rows)  # type: ignore[attr-defined]
