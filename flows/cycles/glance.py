"""Every cycle at a glance, for the coordinator's overview: its status, what is due next,
what waits for the coordinator, and how many have answered its follow-ups so far.

A handful of grouped queries over all cycles (store/queries/glance.py), whatever their number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from flows.wording import NOT_THE_SIGNED_TEXT, WAITING_FOR_SIGNOFF
from store import queries
from store.db import session_scope
from store.models import MessageStatus, StageStatus, pk


@dataclass
class CycleAtAGlance:
    id: int
    name: str
    template: str
    status: str
    timezone: str
    next_stage: str | None = None  # the first stage still to run
    next_due: datetime | None = None
    next_needs_approval: bool = False  # needs approval and was not approved in advance
    awaiting_approval: list[str] = field(default_factory=list)  # stage keys, drafts written
    failed_stages: list[str] = field(default_factory=list)
    held_stages: list[str] = field(default_factory=list)
    # due, and not sent: waiting for sign-off (or refused at the check against what was signed)
    signoff_overdue: list[str] = field(default_factory=list)
    failed_messages: int = 0
    uncertain_messages: int = 0
    bounced_messages: int = 0  # sent, then a delivery report said they never arrived
    asked: int = 0  # people sent a follow-up
    answered: int = 0  # people who answered one

    @property
    def waits(self) -> bool:
        """Whether anything waits for the coordinator."""
        return bool(
            self.awaiting_approval
            or self.failed_stages
            or self.held_stages
            or self.signoff_overdue
            or self.failed_messages
            or self.uncertain_messages
            or self.bounced_messages
        )


def cycles_at_a_glance(engine: Engine) -> list[CycleAtAGlance]:
    """Every cycle, oldest first, with what the overview shows of it."""
    with session_scope(engine) as session:
        found = {
            pk(c): CycleAtAGlance(
                id=pk(c),
                name=c.name,
                template=c.template,
                status=str(c.status),
                timezone=c.timezone,
            )
            for c in queries.list_cycles(session)
        }
        for cycle_id, key, due, approval, status in queries.next_stages(session):
            row = found[cycle_id]
            row.next_stage, row.next_due = key, due
            row.next_needs_approval = approval and status == StageStatus.pending
        lists = {
            StageStatus.awaiting_approval.value: "awaiting_approval",
            StageStatus.failed.value: "failed_stages",
            StageStatus.held.value: "held_stages",
        }
        for cycle_id, key, status in queries.stages_in_status(session, statuses=list(lists)):
            getattr(found[cycle_id], lists[status]).append(key)
        for cycle_id, key in queries.stages_noted(
            session,
            statuses=[StageStatus.pending.value, StageStatus.approved.value],
            prefixes=[WAITING_FOR_SIGNOFF, NOT_THE_SIGNED_TEXT],
        ):
            found[cycle_id].signoff_overdue.append(key)
        counted = {
            MessageStatus.failed.value: "failed_messages",
            MessageStatus.uncertain.value: "uncertain_messages",
            MessageStatus.bounced.value: "bounced_messages",
        }
        for cycle_id, status, n in queries.message_status_counts(session, statuses=list(counted)):
            setattr(found[cycle_id], counted[status], n)
        for cycle_id, (asked, answered) in queries.followup_coverage(session).items():
            found[cycle_id].asked, found[cycle_id].answered = asked, answered
    return list(found.values())
