"""Solution Focused follow-up questions, in each participant's language."""

from __future__ import annotations

from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.email import AudienceKind

__all__ = ["FollowupKind", "questions"]


def questions(run: StageRun, language: str) -> list[dict[str, object]]:
    ids = run.stage.config.get("questions", [])
    return [run.template.questions[q].localised(language) for q in ids]


class FollowupKind(AudienceKind):
    name = "followup"

    def draft(self, run: StageRun, recipient: Recipient) -> Draft:
        email = run.render(recipient, questions=questions(run, recipient.language))
        return Draft(recipient=recipient, email=email)
