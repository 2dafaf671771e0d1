"""An email to the stage's audience (invitations, reminders, notes to a subgroup)."""

from __future__ import annotations

from collections.abc import Iterator

from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.kind import Kind
from store.models import Stage


class AudienceKind(Kind):
    """A kind that writes to the stage's audience, less those its ``unless`` rule leaves out."""

    def recipients(self, run: StageRun, *, validating: bool = False) -> list[Recipient]:
        members = run.audience()
        if not validating:
            members = run.unless_filter(members)
        return [Recipient.of(p, o, run.reading(p.language)) for p, o in members]

    def recipient_chunks(self, run: StageRun, size: int) -> Iterator[list[Recipient]]:
        """The same people as ``recipients``, read from the database ``size`` at a time."""
        for members in run.audience_chunks(size):
            yield [
                Recipient.of(p, o, run.reading(p.language)) for p, o in run.unless_filter(members)
            ]


class EmailKind(AudienceKind):
    name = "email"

    def category(self, stage: Stage) -> str:
        return "reminder" if stage.unless else "email"

    def draft(self, run: StageRun, recipient: Recipient) -> Draft:
        return Draft(recipient=recipient, email=run.render(recipient))
