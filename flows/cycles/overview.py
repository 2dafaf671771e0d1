"""What ``samverkan cycle show`` prints, as plain data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from flows.cycles import plan
from store import queries
from store.db import session_scope


def cycle_overview(engine: Engine, *, cycle_id: int) -> dict[str, Any]:
    """Everything ``samverkan cycle show`` prints, as plain data."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        tz = plan.zone(cycle.timezone)
        stages = queries.stages_of(session, cycle_id=cycle_id)
        counts = queries.message_counts(session, cycle_id=cycle_id)
        failed = queries.undelivered(session, cycle_id=cycle_id)
        by_id = {s.id: s.key for s in stages}
        people = queries.members(session, cycle_id=cycle_id)
        members = len(people)
        return {
            "id": cycle.id,
            "name": cycle.name,
            "template": cycle.template,
            "status": str(cycle.status),
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
                    "status": str(s.status),
                    "approval": s.approval_required,
                    "audience": s.audience,
                    "unless": s.unless,
                    "messages": counts.get(s.id, {}),  # type: ignore[arg-type]
                    "note": s.note,
                }
                for s in stages
            ],
            "problems": [
                {"stage": by_id.get(stage_id), "to": to, "error": err}
                for to, err, stage_id in failed
            ],
            # Withdrawn consent, by the unsubscribe link: every stage leaves them out.
            "unsubscribed": [p.email for p, _ in people if not p.consent and not p.erased],
        }
