"""The reflection: a summary of the cycle for the coordinator to reflect on."""

from __future__ import annotations

import statistics
from typing import Any

from sqlmodel import col, select

from flows.stages.base import Draft, Recipient, StageRun
from store import queries
from store.models import Message, PartStat, Response

CATEGORY = "reflection"


def recipients(run: StageRun, *, validating: bool = False) -> list[Recipient]:
    s = run.settings
    return [Recipient(None, s.sender_name, s.reflection_to, s.coordinator_language)]


def summary(run: StageRun) -> dict[str, Any]:
    session, cycle_id = run.session, run.cycle.id
    meeting_stage = run.meeting_stage()
    meeting = meeting_stage and queries.meeting_of(session, stage_id=meeting_stage.id)  # type: ignore[arg-type]
    stats = list(queries.partstats(session, meeting_id=meeting.id).values()) if meeting else []  # type: ignore[arg-type]
    followups = [s.id for s in run.plan if s.kind == "followup"]
    asked = session.exec(
        select(Message.participant_id)
        .distinct()
        .where(col(Message.stage_id).in_(followups), Message.status == "sent")
    ).all()
    scale_ids = [q.id for q in run.template.questions.values() if q.kind == "scale"]
    values = [
        v
        for v in session.exec(
            select(Response.scale_value).where(
                Response.cycle_id == cycle_id,
                col(Response.question_id).in_(scale_ids),
                col(Response.scale_value).is_not(None),
            )
        ).all()
        if v is not None
    ]
    return {
        "members": len(run.active_members),
        "accepted": stats.count(PartStat.accepted.value),
        "declined": stats.count(PartStat.declined.value),
        "asked": len(asked),
        "answered": len(queries.respondents(session, cycle_id=cycle_id)),
        "scale_count": len(values),
        "scale_mean": f"{statistics.fmean(values):.1f}" if values else "",
        "scale_median": f"{statistics.median(values):g}" if values else "",
    }


def draft(run: StageRun, recipient: Recipient) -> Draft:
    return Draft(recipient=recipient, email=run.render(recipient, summary=summary(run)))
