"""Participants' answers and calendar answers, stored the same way whichever path they came by
(their personal page, a calendar reply, the demo, the coordinator)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine
from sqlmodel import Session

from flows.settings import Settings
from flows.templates import Question, template_of
from store import queries
from store.db import session_scope
from store.errors import InvalidInput, NotFound, StateError
from store.models import MeetingAttendee, PartStat, Response, Stage, pk
from store.types import utcnow

TEXT_LIMIT = 5000


def save_answers(
    session: Session,
    *,
    stage: Stage,
    participant_id: int,
    questions: Mapping[str, Question],
    answers: Mapping[str, int | str | None],
    actor: str = "participant",
) -> int:
    """Store the answers to a follow-up; an empty answer removes an earlier one.

    Returns how many questions now have an answer. Raises InvalidInput for a value out of range.
    """
    asked = stage.config.get("questions", [])
    now = utcnow()
    existing = {
        r.question_id: r
        for r in queries.answers_to_stage(
            session, stage_id=pk(stage), participant_id=participant_id
        )
    }
    for qid, value in answers.items():
        if qid not in asked:
            raise InvalidInput(f"stage {stage.key!r} does not ask {qid!r}")
        q = questions[qid]
        row = existing.get(qid)
        if value is None or (isinstance(value, str) and not value.strip()):
            if row is not None:
                session.delete(row)
                existing.pop(qid)
            continue
        if row is None:
            # The instrument and version the cycle asked it under (bound at launch).
            inst, version = stage.config.get("instruments", {}).get(qid) or (None, None)
            row = Response(
                cycle_id=stage.cycle_id,
                stage_id=stage.id,  # type: ignore[arg-type]
                participant_id=participant_id,
                question_id=qid,
                instrument=inst,
                instrument_version=version,
            )
            existing[qid] = row
        if q.kind == "scale":
            number = int(value) if isinstance(value, int) or str(value).isdigit() else None
            if number is None or not q.min <= number <= q.max:
                raise InvalidInput(f"{qid} takes a whole number from {q.min} to {q.max}")
            row.scale_value = number
        else:
            row.text = str(value).strip()[:TEXT_LIMIT]
        row.updated_at = now
        session.add(row)
    queries.audit(
        session,
        cycle_id=stage.cycle_id,
        action="followup.answer",
        stage_key=stage.key,
        detail=f"participant {participant_id}: {len(existing)} answered",
        actor=actor,
    )
    return len(existing)


def save_rsvp(
    session: Session,
    *,
    meeting_id: int,
    participant_id: int,
    partstat: str,
    cycle_id: int,
    stage_key: str,
    how: str,
) -> None:
    value = partstat.strip().upper()
    if value not in {PartStat.accepted.value, PartStat.declined.value, PartStat.tentative.value}:
        raise InvalidInput(f"unknown answer {partstat!r} (use ACCEPTED, DECLINED or TENTATIVE)")
    row = session.get(MeetingAttendee, (meeting_id, participant_id))
    if row is None:
        raise InvalidInput("not invited to this meeting")
    row.partstat, row.updated_at = PartStat(value), utcnow()
    session.add(row)
    queries.audit(
        session,
        cycle_id=cycle_id,
        action="meeting.rsvp",
        stage_key=stage_key,
        detail=f"participant {participant_id}: {value} ({how})",
        actor="participant",
    )


def _member(session: Session, cycle_id: int, email: str) -> int:
    person = queries.find_participant(session, email=email)
    if person is None or person.id not in {
        p.id for p, _ in queries.members(session, cycle_id=cycle_id)
    }:
        raise NotFound(f"{email} is not a participant of cycle {cycle_id}")
    return person.id  # type: ignore[return-value]


def record_rsvp(engine: Engine, *, cycle_id: int, key: str, email: str, partstat: str) -> None:
    """Record a participant's answer to a meeting invite (ACCEPTED, DECLINED, TENTATIVE)."""
    with session_scope(engine) as session:
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        meeting = queries.meeting_of(session, stage_id=pk(stage))
        if meeting is None:
            raise StateError(f"the meeting {key!r} has not been announced yet")
        pid = _member(session, cycle_id, email)
        if pid not in queries.partstats(session, meeting_id=pk(meeting)):
            raise NotFound(f"{email} was not invited to {key!r}")
        save_rsvp(
            session,
            meeting_id=pk(meeting),
            participant_id=pid,
            partstat=partstat,
            cycle_id=cycle_id,
            stage_key=key,
            how="recorded by the coordinator",
        )


def record_answers(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    email: str,
    answers: Mapping[str, int | str],
) -> None:
    """Store a participant's answers to a follow-up stage (replacing earlier ones)."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        if stage.kind != "followup":
            raise StateError(f"stage {key!r} asks no questions")
        pid = _member(session, cycle_id, email)
        save_answers(
            session,
            stage=stage,
            participant_id=pid,
            questions=template_of(settings, cycle).questions,
            answers=dict(answers),
            actor="coordinator",
        )
