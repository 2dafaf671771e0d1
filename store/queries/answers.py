"""Answers to a follow-up's questions."""

from __future__ import annotations

from sqlmodel import Session, col, select

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


def answers_to_stage(session: Session, *, stage_id: int, participant_id: int) -> list[Response]:
    """The participant's saved answers to a follow-up's questions."""
    return list(
        session.exec(
            select(Response).where(
                Response.stage_id == stage_id, Response.participant_id == participant_id
            )
        ).all()
    )


def written_answers(session: Session, *, cycle_id: int) -> list[tuple[str, str | None]]:
    """(question, text) of every written answer in the cycle, by question, oldest first."""
    rows = session.exec(
        select(Response.question_id, Response.text)
        .where(Response.cycle_id == cycle_id, col(Response.text).is_not(None))
        .order_by(col(Response.question_id), col(Response.id))
    ).all()
    return list(rows)
