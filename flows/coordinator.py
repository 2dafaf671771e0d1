"""The coordinator's operations on cycles, as plain functions (no Prefect needed).

Each takes the engine and settings, does its work in one transaction, and raises a
SamverkanError with a one-line message when the input or the state does not fit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from flows import plan
from flows.answers import save_answers, save_rsvp
from flows.audience import parse_audience
from flows.settings import Settings
from flows.stages import drafts_for, render_every_email
from flows.stages.base import StageRun
from flows.templates import ProcessTemplate, find_template, load_template
from messaging import links
from store import queries
from store.db import session_scope
from store.errors import InvalidInput, NotFound, StateError
from store.models import (
    Cycle,
    CycleMember,
    CycleStatus,
    Message,
    MessageStatus,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow


def template_of(settings: Settings, cycle: Cycle) -> ProcessTemplate:
    return load_template(find_template(settings.templates_dir, cycle.template))


def _one_line(text: str, what: str) -> str:
    value = text.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in value):
        raise InvalidInput(f"{what} must be one line of text")
    return value


def _email(value: str, what: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{what}: {value!r} is not an email address ({exc})") from None


def _variables(t: ProcessTemplate, given: Mapping[str, str], tz: Any) -> dict[str, str]:
    specs = t.spec.variables
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(specs) or "none"
        raise InvalidInput(f"template {t.name} has no variable {unknown[0]!r} (it takes: {known})")
    values: dict[str, str] = {}
    for name, spec in specs.items():
        raw = given.get(name, spec.default)
        if raw is None or not str(raw).strip():
            raise InvalidInput(
                f"missing variable {name}: add --var {name}=… ({spec.help or spec.type})"
            )
        if spec.type == "datetime":
            values[name] = plan.parse_when(str(raw), tz, what=f"--var {name}").isoformat()
        else:
            values[name] = _one_line(str(raw), f"--var {name}")
    return values


def _stage_rows(
    t: ProcessTemplate, start_at: datetime, values: Mapping[str, str], tz: Any, *, cycle_id: int
) -> list[Stage]:
    rows = []
    for position, spec in enumerate(t.spec.stages):
        at = None
        if spec.at == "start":
            at = start_at
        elif spec.at and spec.at in values:
            at = datetime.fromisoformat(values[spec.at])
        elif spec.at:
            at = plan.parse_when(spec.at, tz, what=f"time of stage {spec.key}")
        config: dict[str, Any] = {}
        if spec.meeting:
            starts = datetime.fromisoformat(values[spec.meeting.starts])
            config = {
                "starts_at": starts.isoformat(),
                "duration_minutes": int(
                    plan.parse_duration(spec.meeting.duration) / timedelta(minutes=1)
                ),
                "location": values.get(spec.meeting.location or "", ""),
            }
        if spec.questions:
            config["questions"] = list(spec.questions)
        rows.append(
            Stage(
                cycle_id=cycle_id,
                key=spec.key,
                kind=spec.kind,
                position=position * 10,
                at=at,
                anchor_key=spec.anchor,
                offset_seconds=int(spec.signed_offset.total_seconds()),
                template=spec.template,
                audience=spec.audience,
                unless=spec.unless,
                approval_required=spec.approval == "required",
                config=config,
                due_at=start_at,  # replaced by recompute_due
            )
        )
    return rows


def plan_items(stages: list[Stage]) -> list[plan.PlanItem]:
    return [
        plan.PlanItem(
            key=s.key,
            timing=plan.Timing(
                at=s.at, anchor=s.anchor_key, offset=timedelta(seconds=s.offset_seconds)
            ),
            meeting_start=(
                datetime.fromisoformat(s.config["starts_at"]) if s.kind == "meeting" else None
            ),
        )
        for s in stages
    ]


def recompute_due(stages: list[Stage]) -> None:
    """Set every stage's due time from its timing (anchors followed transitively)."""
    due = plan.resolve(plan_items(stages))
    for s in stages:
        s.due_at = due[s.key]


def launch_cycle(
    engine: Engine,
    settings: Settings,
    *,
    template: str,
    name: str,
    start: str,
    variables: Mapping[str, str] | None = None,
    timezone: str | None = None,
    audience: str | None = None,
    steering: Sequence[str] = (),
    rendered: set[tuple[str, str]] | None = None,
) -> int:
    """Create a running cycle from a template; validate every email for every recipient first.

    Nothing is written unless every template renders for every participant it will reach.
    ``rendered``, if given, receives the (template, language) of every email rendered.
    """
    tz = plan.zone(timezone or settings.timezone)
    folder = find_template(settings.templates_dir, template)
    t = load_template(folder)
    # A bundled template is remembered by name; one elsewhere by its full path.
    bundled = folder.resolve() == (settings.templates_dir / t.name).resolve()
    template_ref = t.name if bundled else str(folder.resolve())
    name = _one_line(name, "--name")
    start_at = plan.parse_when(start, tz, what="--start")
    values = _variables(t, variables or {}, tz)
    chosen = parse_audience(audience)
    steering_group = [_email(e, "--steering") for e in steering]
    # Everything below happens in one transaction: any error leaves nothing behind.
    with session_scope(engine) as session:
        people = [(p, o) for p, o in queries.list_participants(session) if not p.erased]
        people = chosen.select(people)
        if not people:
            raise InvalidInput(
                "no participants to invite"
                + (f" match the audience {chosen.text!r}" if audience else "")
                + ": import them first with: samverkan participants import FILE.csv"
            )
        cycle = Cycle(
            name=name,
            template=template_ref,
            timezone=tz.key,
            start_at=start_at,
            variables=values,
            steering=steering_group,
            status=CycleStatus.running,
        )
        session.add(cycle)
        session.flush()
        session.add_all(CycleMember(cycle_id=pk(cycle), participant_id=pk(p)) for p, _ in people)
        stages = _stage_rows(t, start_at, values, tz, cycle_id=pk(cycle))
        recompute_due(stages)
        for s in stages:
            if s.kind == "meeting":
                starts = datetime.fromisoformat(s.config["starts_at"])
                if starts < start_at:
                    raise InvalidInput(
                        f"the {s.key} starts {starts.astimezone(tz):%Y-%m-%d %H:%M}, "
                        f"before the cycle starts ({start_at:%Y-%m-%d %H:%M})"
                    )
        session.add_all(stages)
        session.flush()
        now = utcnow()
        for s in stages:  # render everything now, so that no error waits for send time
            done = render_every_email(StageRun(session, settings, cycle, s, t, now))
            if rendered is not None:
                rendered |= done
        queries.audit(
            session,
            cycle_id=cycle.id,
            action="cycle.launch",
            detail=f"template {t.name}, {len(people)} participants, "
            f"{len(stages)} stages, starts {start_at.isoformat()}",
        )
        return pk(cycle)


def approve_stage(engine: Engine, *, cycle_id: int, key: str, reason: str | None = None) -> str:
    """Approve a stage's drafts (they go out on the next tick), or approve it in advance."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        now = utcnow()
        if not stage.approval_required:
            raise StateError(f"stage {key!r} does not need approval")
        if stage.status == StageStatus.awaiting_approval:
            result = session.exec(
                update(Message)
                .where(
                    col(Message.stage_id) == stage.id,
                    col(Message.status) == MessageStatus.draft.value,
                )
                .values(status=MessageStatus.queued.value)
            )
            stage.status, stage.approved_at = StageStatus.done, now
            session.add(stage)
            text = f"approved {result.rowcount} drafts of {key}; they are sent on the next tick"
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
        rows = session.exec(
            select(Message).where(Message.stage_id == stage.id).order_by(col(Message.id))
        ).all()
        if rows:
            views = [
                DraftView(
                    m.to_name,
                    m.to_email,
                    "",
                    m.subject,
                    links.hide(m.text),
                    m.ics is not None,
                    str(m.status),
                )
                for m in rows
                if wanted is None or m.to_key == wanted
            ]
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
                )
                for d in drafts_for(run)
                if wanted is None or d.recipient.email.lower() == wanted
            ]
            stored = False
            session.rollback()  # a preview writes nothing
        if wanted and not views:
            raise NotFound(f"{participant} gets no message from stage {key!r}")
        return DraftsResult(stage=key, stored=stored, drafts=views)


def cycle_overview(engine: Engine, *, cycle_id: int) -> dict[str, Any]:
    """Everything ``samverkan cycle show`` prints, as plain data."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        tz = plan.zone(cycle.timezone)
        stages = queries.stages_of(session, cycle_id=cycle_id)
        counts = queries.message_counts(session, cycle_id=cycle_id)
        failed = session.exec(
            select(Message.to_email, Message.last_error, Message.stage_id).where(
                Message.cycle_id == cycle_id,
                col(Message.status).in_(
                    [MessageStatus.failed.value, MessageStatus.uncertain.value]
                ),
            )
        ).all()
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
                    "timing": plan_items([s])[0].timing.describe(),
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


def _member(session: Session, cycle_id: int, email: str) -> int:
    person = queries.find_participant(session, email=email)
    if person is None or person.id not in {
        p.id for p, _ in queries.members(session, cycle_id=cycle_id)
    }:
        raise NotFound(f"{email} is not a participant of cycle {cycle_id}")
    return person.id  # type: ignore[return-value]


def record_rsvp(engine: Engine, *, cycle_id: int, key: str, email: str, partstat: str) -> None:
    """Record a participant's answer to a meeting invite (ACCEPTED, DECLINED, TENTATIVE)."""
    with session_scope(engine) as session:
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        meeting = queries.meeting_of(session, stage_id=pk(stage))
        if meeting is None:
            raise StateError(f"the meeting {key!r} has not been announced yet")
        pid = _member(session, cycle_id, email)
        if pid not in queries.partstats(session, meeting_id=pk(meeting)):
            raise NotFound(f"{email} was not invited to {key!r}")
        save_rsvp(
            session,
            meeting_id=pk(meeting),
            participant_id=pid,
            partstat=partstat,
            cycle_id=cycle_id,
            stage_key=key,
            how="recorded by the coordinator",
        )


def record_answers(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    email: str,
    answers: Mapping[str, int | str],
) -> None:
    """Store a participant's answers to a follow-up stage (replacing earlier ones)."""
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
        if stage.kind != "followup":
            raise StateError(f"stage {key!r} asks no questions")
        pid = _member(session, cycle_id, email)
        save_answers(
            session,
            stage=stage,
            participant_id=pid,
            questions=template_of(settings, cycle).questions,
            answers=dict(answers),
            actor="coordinator",
        )
