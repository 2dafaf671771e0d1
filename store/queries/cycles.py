"""Cycles and their members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from store.errors import NotFound
from store.models import (
    FINISHED_STAGE,
    Cycle,
    CycleMember,
    CycleStatus,
    Meeting,
    Organisation,
    Participant,
    Stage,
    StageStatus,
)
from store.queries.people import Member


def list_cycles(session: Session) -> list[Cycle]:
    return list(session.exec(select(Cycle).order_by(col(Cycle.id))).all())


def get_cycle(session: Session, *, cycle_id: int) -> Cycle:
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise NotFound(f"no cycle with id {cycle_id} (see: samverkan cycle list)")
    return cycle


def members(
    session: Session, *, cycle_id: int, after: int | None = None, limit: int | None = None
) -> list[Member]:
    """The cycle's members by participant id; ``after``/``limit`` read one page of them."""
    query = (
        select(Participant, Organisation)
        .join(CycleMember, col(CycleMember.participant_id) == Participant.id)
        .join(Organisation, col(Participant.organisation_id) == Organisation.id)
        .where(CycleMember.cycle_id == cycle_id)
        .order_by(col(Participant.id))
    )
    if after is not None:
        query = query.where(col(Participant.id) > after)
    if limit is not None:
        query = query.limit(limit)
    return [(p, o) for p, o in session.exec(query).all()]


def active_member_counts(session: Session, *, cycle_id: int) -> tuple[int, int]:
    """(participants, organisations) of the cycle who can be written to."""
    row = session.exec(
        select(func.count(), func.count(func.distinct(Participant.organisation_id)))
        .select_from(CycleMember)
        .join(Participant, col(CycleMember.participant_id) == Participant.id)
        .where(
            CycleMember.cycle_id == cycle_id,
            col(Participant.erased).is_(False),
            col(Participant.consent).is_(True),
        )
    ).one()
    return int(row[0]), int(row[1])


def member_summary(session: Session, *, cycle_id: int) -> tuple[int, list[str]]:
    """How many people the cycle has, and the addresses of those who unsubscribed."""
    count = session.exec(
        select(func.count()).select_from(CycleMember).where(CycleMember.cycle_id == cycle_id)
    ).one()
    unsubscribed = session.exec(
        select(Participant.email)
        .join(CycleMember, col(CycleMember.participant_id) == Participant.id)
        .where(
            CycleMember.cycle_id == cycle_id,
            col(Participant.consent).is_(False),
            col(Participant.erased).is_(False),
        )
        .order_by(col(Participant.id))
    ).all()
    return int(count), list(unsubscribed)


def due_cycle_ids(session: Session, *, now: datetime) -> list[int]:
    """Running cycles with at least one stage due at ``now`` that has not run yet.

    One indexed query, whatever the number of cycles: ticks over many quiet cycles stay cheap.
    """
    waiting = [StageStatus.pending.value, StageStatus.approved.value]
    rows = session.exec(
        select(Stage.cycle_id)
        .join(Cycle, col(Cycle.id) == Stage.cycle_id)
        .where(
            Cycle.status == CycleStatus.running.value,
            col(Stage.status).in_(waiting),
            col(Stage.due_at) <= now,
        )
        .distinct()
        .order_by(col(Stage.cycle_id))
    ).all()
    return list(rows)


def finished_cycle_ids(session: Session, *, now: datetime) -> list[int]:
    """Running cycles with nothing ahead at ``now`` (one query): they have stages, none of
    them left to run, and no announced meeting that has yet to start (it can still be moved
    or cancelled, which a completed cycle no longer allows)."""
    finished = [s.value for s in FINISHED_STAGE]
    open_stage = (
        select(Stage.id)
        .where(Stage.cycle_id == Cycle.id, col(Stage.status).not_in(finished))
        .exists()
    )
    meeting_ahead = (
        select(Meeting.id)
        .where(
            Meeting.cycle_id == Cycle.id,
            col(Meeting.cancelled).is_(False),
            col(Meeting.starts_at) > now,
        )
        .exists()
    )
    any_stage = select(Stage.id).where(Stage.cycle_id == Cycle.id).exists()
    rows = session.exec(
        select(Cycle.id)
        .where(Cycle.status == CycleStatus.running.value, any_stage, ~open_stage, ~meeting_ahead)
        .order_by(col(Cycle.id))
    ).all()
    return [cycle_id for cycle_id in rows if cycle_id is not None]


def lock_running_cycle(session: Session, *, cycle_id: int) -> bool:
    """Take the cycle's row lock by moving its plan version on, if it is running; False if
    it is not. As the first write of a transaction it holds off every plan change (they
    start the same way) until the transaction ends."""
    locked = session.exec(
        update(Cycle)
        .where(col(Cycle.id) == cycle_id, col(Cycle.status) == CycleStatus.running.value)
        .values(plan_version=Cycle.plan_version + 1)
    )
    return bool(locked.rowcount == 1)


def bump_plan_version(session: Session, *, cycle_id: int) -> None:
    """Move the cycle's plan version on, whatever its state. As the first write of a
    transaction it takes the lock on the cycle's row (on SQLite, the database's write lock),
    so changes to one cycle queue up."""
    session.exec(
        update(Cycle).where(col(Cycle.id) == cycle_id).values(plan_version=Cycle.plan_version + 1)
    )
