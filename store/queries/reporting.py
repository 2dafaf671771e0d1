"""The aggregates the indicators are computed from, counted in SQL at the finest grain.

Each row is per cycle × organisation × role; each person has one organisation and one role,
so the caller adds those rows up exactly to every coarser group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from store.models import (
    Cycle,
    CycleStatus,
    Message,
    MessageStatus,
    Organisation,
    Participant,
    Response,
    Stage,
)

# (cycle id, organisation, role, people)
PeopleRow = tuple[int, str, str, int]
# (cycle id, organisation, role, scale value, answers)
ScaleRow = tuple[int, str, str, int, int]


def cycles_not_cancelled(session: Session) -> list[Cycle]:
    """Every cycle that was not cancelled, oldest first (by start, then by id)."""
    return list(
        session.exec(
            select(Cycle)
            .where(Cycle.status != CycleStatus.cancelled.value)
            .order_by(col(Cycle.start_at), col(Cycle.id))
        ).all()
    )


def people_asked(session: Session, *, cycle_ids: Sequence[int]) -> list[PeopleRow]:
    """How many people were sent a follow-up, per cycle × organisation × role."""
    who = Message.participant_id
    query = (
        sql_select(
            col(Message.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            func.count(func.distinct(who)),
        )
        .join(Stage, col(Stage.id) == Message.stage_id)
        .join(Participant, col(Participant.id) == who)
        .where(
            col(Message.cycle_id).in_(cycle_ids),
            col(Stage.kind) == "followup",
            col(Message.status) == MessageStatus.sent.value,
        )
        .group_by(col(Message.cycle_id), col(Organisation.name), col(Participant.role))
    )
    query = query.join(Organisation, col(Organisation.id) == Participant.organisation_id)
    return [(c, o, r, n) for c, o, r, n in session.execute(query).all()]


def people_who_answered(session: Session, *, cycle_ids: Sequence[int]) -> list[PeopleRow]:
    """How many people answered a follow-up, per cycle × organisation × role."""
    who = Response.participant_id
    query = (
        sql_select(
            col(Response.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            func.count(func.distinct(who)),
        )
        .join(Participant, col(Participant.id) == who)
        .where(col(Response.cycle_id).in_(cycle_ids))
        .group_by(col(Response.cycle_id), col(Organisation.name), col(Participant.role))
    )
    query = query.join(Organisation, col(Organisation.id) == Participant.organisation_id)
    return [(c, o, r, n) for c, o, r, n in session.execute(query).all()]


def scale_histograms(session: Session, *, cycle_ids: Sequence[int]) -> list[ScaleRow]:
    """How often each scale value was given, per cycle × organisation × role."""
    query = (
        sql_select(
            col(Response.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            col(Response.scale_value),
            func.count(),
        )
        .join(Participant, col(Participant.id) == Response.participant_id)
        .join(Organisation, col(Organisation.id) == Participant.organisation_id)
        .where(col(Response.cycle_id).in_(cycle_ids), col(Response.scale_value).is_not(None))
        .group_by(
            col(Response.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            col(Response.scale_value),
        )
    )
    return [(c, o, r, v, n) for c, o, r, v, n in session.execute(query).all()]


# (cycle id, organisation, role, instrument, version, question id, scale value, answers)
QuestionScaleRow = tuple[int, str, str, str | None, int | None, str, int, int]


def scale_histograms_by_question(
    session: Session, *, cycle_ids: Sequence[int]
) -> list[QuestionScaleRow]:
    """How often each scale value was given to each question (with the instrument and
    version it was asked under), per cycle × organisation × role."""
    keys = (
        col(Response.cycle_id),
        col(Organisation.name),
        col(Participant.role),
        col(Response.instrument),
        col(Response.instrument_version),
        col(Response.question_id),
        col(Response.scale_value),
    )
    query = (
        sql_select(*keys, func.count())
        .join(Participant, col(Participant.id) == Response.participant_id)
        .join(Organisation, col(Organisation.id) == Participant.organisation_id)
        .where(col(Response.cycle_id).in_(cycle_ids), col(Response.scale_value).is_not(None))
        .group_by(*keys)
    )
    return [tuple(row) for row in session.execute(query).all()]


def followup_instruments(session: Session, *, cycle_ids: Sequence[int]) -> dict[int, list[Any]]:
    """Each cycle's first follow-up instrument as its launch bound it: {cycle id: [id,
    version]}; cycles whose follow-ups ask no instrument's questions are left out."""
    rows = session.exec(
        select(Stage)
        .where(col(Stage.cycle_id).in_(cycle_ids), col(Stage.kind) == "followup")
        .order_by(col(Stage.cycle_id), col(Stage.position))
    ).all()
    found: dict[int, list[Any]] = {}
    for stage in rows:
        bound = (stage.config or {}).get("instruments") or {}
        if stage.cycle_id not in found and bound:
            found[stage.cycle_id] = list(next(iter(bound.values())))
    return found
