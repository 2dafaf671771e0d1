"""Participants' answers and calendar answers, stored the same way whichever path they came by
(their personal page, a calendar reply, the demo)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import Session, select

from flows.templates import Question
from store import queries
from store.errors import InvalidInput
from store.models import MeetingAttendee, PartStat, Response, Stage
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
        for r in session.exec(
            select(Response).where(
                Response.stage_id == stage.id, Response.participant_id == participant_id
            )
        ).all()
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
            row = Response(
                cycle_id=stage.cycle_id,
                stage_id=stage.id,  # type: ignore[arg-type]
                participant_id=participant_id,
                question_id=qid,
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
