"""Approving a stage's drafts, and showing them (stored, or a preview of what it would send)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from flows.cycles import plan
from flows.cycles.signoff import current_texts
from flows.settings import Settings, load_settings
from flows.stages import drafts_for
from flows.stages.base import StageRun
from flows.templates import template_of
from messaging import calendar, links
from store import queries
from store.db import session_scope
from store.errors import NotFound, StateError
from store.models import Message, StageStatus, pk
from store.types import utcnow


def approve_stage(
    engine: Engine,
    *,
    cycle_id: int,
    key: str,
    reason: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Approve a stage's drafts (they go out on the next tick), or approve it in advance.
    A stage that organisations sign is approved only once they all have (``settings``
    render its texts; by default those of the environment)."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        now = utcnow()
        if not stage.approval_required:
            raise StateError(f"stage {key!r} does not need approval")
        if stage.signoff and stage.status in (StageStatus.pending, StageStatus.awaiting_approval):
            state = current_texts(session, settings or load_settings(), cycle, stage)
            if not state.complete:
                raise StateError(
                    f"{key} waits for sign-off from {state.waiting_line()}; approve it when "
                    f"they have signed (see: samverkan signoff status {cycle_id} {key})"
                )
            # What is approved is these texts: if the stage comes to send others (a newcomer's
            # language, a changed file), the approval is withdrawn (flows/stages/signoff.py).
            stage.approved_texts = sorted(t.content_hash for t in state.texts)
        if stage.status == StageStatus.awaiting_approval:
            queued = queries.queue_drafts(session, stage_id=pk(stage))
            stage.status, stage.approved_at = StageStatus.done, now
            session.add(stage)
            text = f"approved {queued} drafts of {key}; they are sent on the next tick"
        elif stage.status == StageStatus.pending:
            stage.status, stage.approved_at = StageStatus.approved, now
            session.add(stage)
            due = f"{stage.due_at.astimezone(plan.zone(cycle.timezone)):%Y-%m-%d %H:%M}"
            text = f"approved {key} in advance; it is sent when due ({due})"
        else:
            raise StateError(
                f"stage {key!r} is {stage.status}; only pending stages or drafts can be approved"
            )
        queries.audit(
            session,
            cycle_id=cycle_id,
            action="stage.approve",
            stage_key=key,
            detail=text,
            reason=reason,
        )
        return text


@dataclass(frozen=True)
class DraftView:
    to_name: str
    to_email: str
    language: str
    subject: str
    text: str
    has_calendar: bool
    status: str
    # As the participant sees it: the HTML part (links hidden too), and who they are.
    html: str = ""
    organisation: str = ""
    role: str = ""
    calendar: str = ""  # one line about the calendar invite, if there is one


@dataclass(frozen=True)
class DraftsResult:
    stage: str
    stored: bool  # False: a preview rendered now, nothing stored yet
    drafts: list[DraftView] = field(default_factory=list)


def stage_drafts(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    participant: str | None = None,
    organisation: str | None = None,
    examples: bool = False,
) -> DraftsResult:
    """The stage's stored drafts, or a preview of what it would send now; only those to
    ``organisation``'s people if given. With ``examples``, only the first draft of each
    language and role carries its text, HTML and calendar line (the workspace shows one
    example per group and lists the rest: for 5,000 people, 0.1 s instead of 1 s)."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        wanted = participant.strip().lower() if participant else None
        rows = queries.stage_recipients(session, stage_id=pk(stage))
        if rows:
            views = []
            shown: set[tuple[str, str]] = set()
            for r in rows:
                if wanted is not None and r.to_key != wanted:
                    continue
                if organisation is not None and r.organisation != organisation:
                    continue
                group = (str(r.language or ""), str(r.role or ""))
                text = html = summary = ""
                if not examples or group not in shown:
                    # The bodies are read only for the drafts that are shown whole.
                    m = session.get(Message, r.id)
                    assert m is not None
                    text, html = links.hide(m.text), links.hide(m.html)
                    summary = calendar.summary(m.ics) if m.ics else ""
                shown.add(group)
                views.append(
                    DraftView(
                        r.to_name,
                        r.to_email,
                        group[0],
                        r.subject,
                        text,
                        bool(r.has_ics),
                        str(r.status),
                        html=html,
                        organisation=r.organisation or "",
                        role=group[1],
                        calendar=summary,
                    )
                )
            stored = True
        else:
            run = StageRun(session, settings, cycle, stage, template_of(settings, cycle), utcnow())
            views = [
                DraftView(
                    d.recipient.name,
                    d.recipient.email,
                    d.recipient.language,
                    d.email.subject,
                    links.hide(d.email.text),
                    d.ics is not None,
                    "preview",
                    html=links.hide(d.email.html),
                    organisation=d.recipient.organisation,
                    role=d.recipient.role,
                    calendar=calendar.summary(d.ics) if d.ics else "",
                )
                for d in drafts_for(run)
                if (wanted is None or d.recipient.email.lower() == wanted)
                and (organisation is None or d.recipient.organisation == organisation)
            ]
            stored = False
            session.rollback()  # a preview writes nothing
        if wanted and not views:
            raise NotFound(f"{participant} gets no message from stage {key!r}")
        return DraftsResult(stage=key, stored=stored, drafts=views)
