"""Answers to a follow-up's questions."""

from __future__ import annotations

from sqlmodel import Session, select

from store.models import Response


def respondents(
    session: Session, *, stage_id: int | None = None, cycle_id: int | None = None
) -> set[int]:
    query = select(Response.participant_id).distinct()
    if stage_id is not None:
        query = query.where(Response.stage_id == stage_id)
    if cycle_id is not None:
        query = query.where(Response.cycle_id == cycle_id)
    return {pid for pid in session.exec(query).all() if pid is not None}
