"""What ``samverkan cycle show`` prints, as plain data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from flows.cycles import plan
from store import queries
from store.db import session_scope
from store.models import Stage


def _starts(stage: Stage, tz: ZoneInfo) -> str | None:
    starts = stage.config.get("starts_at") if stage.kind == "meeting" else None
    return datetime.fromisoformat(starts).astimezone(tz).isoformat() if starts else None


def _signoff(session: Session, stage: Stage) -> dict[str, Any] | None:
    if not stage.signoff:
        return None
    # Only then: rendering what is signed loads the stage kinds, templates and Markdown.
    from flows.cycles.signoff import summary

    return summary(session, stage)


def cycle_overview(engine: Engine, *, cycle_id: int) -> dict[str, Any]:
    """Everything ``samverkan cycle show`` prints, as plain data."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        tz = plan.zone(cycle.timezone)
        stages = queries.stages_of(session, cycle_id=cycle_id)
        counts = queries.message_counts(session, cycle_id=cycle_id)
        failed = queries.undelivered(session, cycle_id=cycle_id)
        by_id = {s.id: s.key for s in stages}
        members, unsubscribed = queries.member_summary(session, cycle_id=cycle_id)
        return {
            "id": cycle.id,
            "name": cycle.name,
            "template": cycle.template,
            "status": str(cycle.status),
            "plan_version": cycle.plan_version,
            "timezone": cycle.timezone,
            "start": cycle.start_at.astimezone(tz).isoformat(),
            "participants": members,
            "variables": cycle.variables,
            "stages": [
                {
                    "key": s.key,
                    "kind": s.kind,
                    "due": s.due_at.astimezone(tz).isoformat(),
                    "timing": plan.plan_items([s])[0].timing.describe(),
                    # a meeting's own time (its due time is when the invite goes out)
                    "starts": _starts(s, tz),
                    "status": str(s.status),
                    "approval": s.approval_required,
                    "audience": s.audience,
                    "unless": s.unless,
                    "messages": counts.get(s.id, {}),  # type: ignore[arg-type]
                    "note": s.note,
                    "signoff": _signoff(session, s),
                }
                for s in stages
            ],
            "problems": [
                {"stage": by_id.get(stage_id), "to": to, "error": err}
                for to, err, stage_id in failed
            ],
            # Withdrawn consent, by the unsubscribe link: every stage leaves them out.
            "unsubscribed": unsubscribed,
            # A delivery report said their mail never arrived: later stages leave them out.
            "bounced": [
                {"to": to, "reason": reason}
                for to, reason in queries.bounced_members(session, cycle_id=cycle_id)
            ],
        }


def audit_entries(engine: Engine, *, cycle_id: int) -> list[dict[str, Any]]:
    """What ``samverkan audit`` prints: every action on a cycle, oldest first."""
    with session_scope(engine) as session:
        queries.get_cycle(session, cycle_id=cycle_id)
        return [
            {
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "stage": e.stage_key,
                "detail": e.detail,
                "reason": e.reason,
            }
            for e in queries.audit_log(session, cycle_id=cycle_id)
        ]
