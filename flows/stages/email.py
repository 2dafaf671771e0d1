"""An email to the stage's audience (invitations, reminders, notes to a subgroup)."""

from __future__ import annotations

from collections.abc import Iterator

from flows.stages.base import Draft, Recipient, StageRun
from store.models import Stage


def CATEGORY(stage: Stage) -> str:
    return "reminder" if stage.unless else "email"


def recipients(run: StageRun, *, validating: bool = False) -> list[Recipient]:
    members = run.audience()
    if not validating:
        members = run.unless_filter(members)
    return [Recipient.of(p, o) for p, o in members]


def recipient_chunks(run: StageRun, size: int) -> Iterator[list[Recipient]]:
    """The same people as ``recipients``, read from the database ``size`` at a time."""
    for members in run.audience_chunks(size):
        yield [Recipient.of(p, o) for p, o in run.unless_filter(members)]


def draft(run: StageRun, recipient: Recipient) -> Draft:
    return Draft(recipient=recipient, email=run.render(recipient))
