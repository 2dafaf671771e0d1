"""Solution Focused follow-up questions, in each participant's language."""

from __future__ import annotations

from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.email import AudienceKind
from flows.templates.instruments import asked

__all__ = ["FollowupKind", "questions"]


def questions(run: StageRun, recipient: Recipient) -> list[dict[str, object]]:
    """The stage's questions as this recipient is asked them (language, respondent group)."""
    t = run.template
    return [
        asked(
            t.questions,
            t.instruments,
            q,
            recipient.language,
            organisation=recipient.organisation,
            role=recipient.role,
        )
        for q in run.stage.config.get("questions", [])
    ]


class FollowupKind(AudienceKind):
    name = "followup"

    def draft(self, run: StageRun, recipient: Recipient) -> Draft:
        email = run.render(recipient, questions=questions(run, recipient))
        return Draft(recipient=recipient, email=email)
