"""The stages of a cycle's plan."""

from __future__ import annotations

from sqlmodel import Session, col, select

from store.errors import NotFound
from store.models import Stage


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
