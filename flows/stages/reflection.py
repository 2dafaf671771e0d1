"""The reflection: the cycle's report, emailed to the coordinator and the steering group."""

from __future__ import annotations

from typing import Any

from flows.reporting import indicators as ind
from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.kind import Kind
from messaging import i18n
from store import queries
from store.db import engine_of
from store.models import PartStat, pk


def summary(run: StageRun) -> dict[str, Any]:
    """The headline numbers, from the same SQL indicators as the report (once per run)."""
    if "summary" not in run.memo:
        run.memo["summary"] = _summary(run)
    return dict(run.memo["summary"])


def _summary(run: StageRun) -> dict[str, Any]:
    meeting_stage = run.meeting_stage()
    meeting = meeting_stage and queries.meeting_of(run.session, stage_id=pk(meeting_stage))
    stats = list(queries.partstats(run.session, meeting_id=pk(meeting)).values()) if meeting else []
    figures = ind.compute(
        engine_of(run.session),
        cycle_ids=[pk(run.cycle)],
        min_group=run.settings.min_group,
    )
    everyone = (pk(run.cycle), ind.ALL, ind.ALL)
    asked, _, counts_hidden = figures.value(everyone, "asked")
    answered, _, _ = figures.value(everyone, "answered")
    mean, n_mean, hidden = figures.value(everyone, "scale_mean")
    middle, _, _ = figures.value(everyone, "scale_median")
    members = run.member_counts[0]
    # The same rule as the report's tables: a headline number about fewer people than the
    # minimum (how many came, who said no) would point at them.
    few_members = 0 < members < run.settings.min_group or counts_hidden
    lang = run.settings.coordinator_language  # who the reflection is written for
    return {
        "members": "" if few_members else members,
        "members_hidden": few_members,
        "accepted": "" if few_members else stats.count(PartStat.accepted.value),
        "declined": "" if few_members else stats.count(PartStat.declined.value),
        "counts_hidden": counts_hidden,
        "asked": "" if asked is None else int(asked),
        "answered": "" if answered is None else int(answered),
        "scale_count": n_mean or 0,
        "scale_hidden": hidden,
        "min_group": run.settings.min_group,
        "scale_mean": i18n.format_number(mean, lang, decimals=1) if mean is not None else "",
        "scale_median": i18n.format_number(middle, lang) if middle is not None else "",
    }


def _report(run: StageRun) -> str:
    """The HTML report, built once per stage run whatever the number of recipients."""
    if "report" not in run.memo:
        from flows.reporting.report import build_report

        engine = engine_of(run.session)
        run.memo["report"] = build_report(engine, run.settings, pk(run.cycle), "html")
    return str(run.memo["report"])


class ReflectionKind(Kind):
    """Writes to the coordinator and the steering group, the report attached."""

    name = "reflection"

    def recipients(self, run: StageRun, *, validating: bool = False) -> list[Recipient]:
        s = run.settings
        language = run.reading(s.coordinator_language)
        found = [Recipient(None, s.sender_name, s.reflection_to, language)]
        for email in run.cycle.steering or []:
            if email.lower() != s.reflection_to.lower():
                found.append(Recipient(None, email, email, language))
        return found

    def draft(self, run: StageRun, recipient: Recipient) -> Draft:
        email = run.render(recipient, summary=summary(run))
        if run.validating:
            return Draft(recipient=recipient, email=email)
        return Draft(
            recipient=recipient,
            email=email,
            attachment_name=f"reflection-{pk(run.cycle)}.html",
            attachment=_report(run),
        )
