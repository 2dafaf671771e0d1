"""The stages of a cycle's plan."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from store.errors import NotFound
from store.models import Stage, StageStatus


def stages_of(session: Session, *, cycle_id: int) -> list[Stage]:
    return list(
        session.exec(
            select(Stage).where(Stage.cycle_id == cycle_id).order_by(col(Stage.position))
        ).all()
    )


def get_stage(session: Session, *, cycle_id: int, key: str) -> Stage:
    stage = session.exec(select(Stage).where(Stage.cycle_id == cycle_id, Stage.key == key)).first()
    if stage is None:
        keys = ", ".join(s.key for s in stages_of(session, cycle_id=cycle_id))
        raise NotFound(f"cycle {cycle_id} has no stage {key!r} (stages: {keys})")
    return stage


def cycle_id_of_stage(session: Session, *, stage_id: int) -> int:
    """The cycle the stage belongs to (raises if there is no such stage)."""
    return session.exec(select(Stage.cycle_id).where(Stage.id == stage_id)).one()


def claim_stage(
    session: Session, *, stage_id: int, expected: Sequence[str], to: StageStatus
) -> bool:
    """Move the stage from one of ``expected`` to ``to``; False if someone else was first.

    A conditional UPDATE: as the first write of a transaction it takes the write lock on
    SQLite and the row lock on PostgreSQL, so overlapping ticks cannot both run a stage.
    """
    result = session.exec(
        update(Stage)
        .where(col(Stage.id) == stage_id, col(Stage.status).in_(list(expected)))
        .values(status=to.value)
    )
    return bool(result.rowcount == 1)
