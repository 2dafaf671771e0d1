"""Approving a stage's drafts, and showing them (stored, or a preview of what it would send)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from flows.cycles import plan
from flows.settings import Settings
from flows.stages import drafts_for
from flows.stages.base import StageRun
from flows.templates import template_of
from messaging import calendar, links
from store import queries
from store.db import session_scope
from store.errors import NotFound, StateError
from store.models import StageStatus, pk
from store.types import utcnow


def approve_stage(engine: Engine, *, cycle_id: int, key: str, reason: str | None = None) -> str:
    """Approve a stage's drafts (they go out on the next tick), or approve it in advance."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        now = utcnow()
        if not stage.approval_required:
            raise StateError(f"stage {key!r} does not need approval")
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
    engine: Engine, settings: Settings, *, cycle_id: int, key: str, participant: str | None = None
) -> DraftsResult:
    """The stage's stored drafts, or a preview of what it would send now."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        wanted = participant.strip().lower() if participant else None
        rows = queries.messages_of_stage(session, stage_id=pk(stage))
        if rows:
            people = {p.id: (p, o) for p, o in queries.members(session, cycle_id=cycle_id)}
            views = []
            for m in rows:
                if wanted is not None and m.to_key != wanted:
                    continue
                person, org = people.get(m.participant_id, (None, None))
                views.append(
                    DraftView(
                        m.to_name,
                        m.to_email,
                        str(person.language) if person else "",
                        m.subject,
                        links.hide(m.text),
                        m.ics is not None,
                        str(m.status),
                        html=links.hide(m.html),
                        organisation=org.name if org else "",
                        role=str(person.role) if person else "",
                        calendar=calendar.summary(m.ics) if m.ics else "",
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
                if wanted is None or d.recipient.email.lower() == wanted
            ]
            stored = False
            session.rollback()  # a preview writes nothing
        if wanted and not views:
            raise NotFound(f"{participant} gets no message from stage {key!r}")
        return DraftsResult(stage=key, stored=stored, drafts=views)
