"""Data access as keyword-only functions that take a session."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from store.errors import NotFound
from store.models import (
    FINISHED_STAGE,
    AuditEntry,
    Cycle,
    CycleMember,
    CycleStatus,
    Meeting,
    MeetingAttendee,
    Message,
    MessageStatus,
    Organisation,
    Participant,
    Response,
    Stage,
    StageStatus,
)

Member = tuple[Participant, Organisation]


def get_or_create_organisation(session: Session, *, name: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
    return org


def find_participant(session: Session, *, email: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.email_key == email.strip().lower())
    ).first()


def list_participants(session: Session) -> list[Member]:
    rows = session.exec(
        select(Participant, Organisation)
        .join(Organisation, col(Participant.organisation_id) == Organisation.id)
        .order_by(Organisation.name, Participant.name)
    ).all()
    return [(p, o) for p, o in rows]


def list_cycles(session: Session) -> list[Cycle]:
    return list(session.exec(select(Cycle).order_by(col(Cycle.id))).all())


def get_cycle(session: Session, *, cycle_id: int) -> Cycle:
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise NotFound(f"no cycle with id {cycle_id} (see: samverkan cycle list)")
    return cycle


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


def meeting_of(session: Session, *, stage_id: int) -> Meeting | None:
    return session.exec(select(Meeting).where(Meeting.stage_id == stage_id)).first()


def partstats(session: Session, *, meeting_id: int) -> dict[int, str]:
    rows = session.exec(
        select(MeetingAttendee.participant_id, MeetingAttendee.partstat).where(
            MeetingAttendee.meeting_id == meeting_id
        )
    ).all()
    return {pid: str(stat) for pid, stat in rows}


def respondents(
    session: Session, *, stage_id: int | None = None, cycle_id: int | None = None
) -> set[int]:
    query = select(Response.participant_id).distinct()
    if stage_id is not None:
        query = query.where(Response.stage_id == stage_id)
    if cycle_id is not None:
        query = query.where(Response.cycle_id == cycle_id)
    return {pid for pid in session.exec(query).all() if pid is not None}


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


def audit(
    session: Session,
    *,
    cycle_id: int | None,
    action: str,
    stage_key: str | None = None,
    detail: str = "",
    reason: str | None = None,
    actor: str = "coordinator",
) -> AuditEntry:
    entry = AuditEntry(
        cycle_id=cycle_id,
        action=action,
        stage_key=stage_key,
        detail=detail,
        reason=reason,
        actor=actor,
    )
    session.add(entry)
    return entry


def audit_log(session: Session, *, cycle_id: int) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.cycle_id == cycle_id)
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        ).all()
    )
