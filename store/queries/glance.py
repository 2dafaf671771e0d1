"""Every cycle at a glance, for the workspace's overview: each function is one grouped query
over all cycles (never one query per cycle), so the page stays quick with hundreds of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from store.models import Message, MessageStatus, Response, Stage, StageStatus

# (cycle id, stage key, due at, needs approval, status)
NextStage = tuple[int, str, datetime, bool, str]


def next_stages(session: Session) -> list[NextStage]:
    """Per cycle, the first stage still to run (pending, or approved in advance): the
    earliest due, the first in the plan among those due at the same time."""
    waiting = [StageStatus.pending.value, StageStatus.approved.value]
    rank = (
        func.row_number()
        .over(partition_by=col(Stage.cycle_id), order_by=(col(Stage.due_at), col(Stage.position)))
        .label("rank")
    )
    ranked = (
        sql_select(
            col(Stage.cycle_id),
            col(Stage.key),
            col(Stage.due_at),
            col(Stage.approval_required),
            col(Stage.status),
            rank,
        )
        .where(col(Stage.status).in_(waiting))
        .subquery()
    )
    rows = session.execute(
        sql_select(
            ranked.c.cycle_id,
            ranked.c.key,
            ranked.c.due_at,
            ranked.c.approval_required,
            ranked.c.status,
        ).where(ranked.c.rank == 1)
    ).all()
    return [(c, k, d, bool(a), str(s)) for c, k, d, a, s in rows]


def stages_in_status(session: Session, *, statuses: Sequence[str]) -> list[tuple[int, str, str]]:
    """(cycle id, stage key, status) of every stage in one of ``statuses``, in plan order."""
    rows = session.execute(
        sql_select(col(Stage.cycle_id), col(Stage.key), col(Stage.status))
        .where(col(Stage.status).in_(statuses))
        .order_by(col(Stage.cycle_id), col(Stage.position))
    ).all()
    return [(c, k, str(s)) for c, k, s in rows]


def stages_noted(
    session: Session, *, statuses: Sequence[str], prefixes: Sequence[str]
) -> list[tuple[int, str]]:
    """(cycle id, stage key) of every stage in one of ``statuses`` whose note starts with
    one of ``prefixes``, in plan order."""
    rows = session.execute(
        sql_select(col(Stage.cycle_id), col(Stage.key))
        .where(
            col(Stage.status).in_(statuses),
            or_(*(col(Stage.note).startswith(p, autoescape=True) for p in prefixes)),
        )
        .order_by(col(Stage.cycle_id), col(Stage.position))
    ).all()
    return [(c, k) for c, k in rows]


def message_status_counts(
    session: Session, *, statuses: Sequence[str]
) -> list[tuple[int, str, int]]:
    """(cycle id, status, messages) for every cycle with messages in one of ``statuses``."""
    rows = session.execute(
        sql_select(col(Message.cycle_id), col(Message.status), func.count())
        .where(col(Message.status).in_(statuses))
        .group_by(col(Message.cycle_id), col(Message.status))
    ).all()
    return [(c, str(s), int(n)) for c, s, n in rows]


def followup_coverage(session: Session) -> dict[int, tuple[int, int]]:
    """Per cycle: (people sent a follow-up, people who answered one), counted as the
    indicators count them for the whole cycle (store/queries/reporting.py)."""
    who = Message.participant_id
    asked = session.execute(
        sql_select(col(Message.cycle_id), func.count(func.distinct(who)))
        .join(Stage, col(Stage.id) == Message.stage_id)
        .where(
            col(Stage.kind) == "followup",
            col(Message.status) == MessageStatus.sent.value,
            col(who).is_not(None),
        )
        .group_by(col(Message.cycle_id))
    ).all()
    answered = session.execute(
        sql_select(col(Response.cycle_id), func.count(func.distinct(Response.participant_id)))
        .where(col(Response.participant_id).is_not(None))
        .group_by(col(Response.cycle_id))
    ).all()
    found: dict[int, tuple[int, int]] = {c: (int(n), 0) for c, n in asked}
    for c, n in answered:
        found[c] = (found.get(c, (0, 0))[0], int(n))
    return found
