"""An email to the stage's audience (invitations, reminders, notes to a subgroup)."""

from __future__ import annotations

from flows.stages.base import Draft, Recipient, StageRun
from store.models import Stage


def CATEGORY(stage: Stage) -> str:
    return "reminder" if stage.unless else "email"


def recipients(run: StageRun, *, validating: bool = False) -> list[Recipient]:
    members = run.audience()
    if not validating:
        members = run.unless_filter(members)
    return [Recipient.of(p, o) for p, o in members]


def draft(run: StageRun, recipient: Recipient) -> Draft:
    return Draft(recipient=recipient, email=run.render(recipient))
