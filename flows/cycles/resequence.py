"""Changing a running cycle: re-sequencing with its knock-on effects, previewed or carried out.

Every operation runs in one transaction that starts by taking the cycle's plan version (a
conditional UPDATE, so two coordinators editing one cycle queue up on the row lock, and an
edit made on a stale view is refused). The operation itself is a pure ``Plan`` method
(flows/cycles/plan.py); this module applies the new plan to the stored stages, sends what an
announced meeting's change requires, and describes every effect. ``--dry-run`` runs the same
code and rolls back, so the preview and the real run print the same lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from flows.cycles import plan as planning
from flows.cycles.signoff import NOT_RUN, check_organisations, current_texts
from flows.people.audience import parse_audience
from flows.settings import Settings
from flows.stages import KINDS, meeting, render_every_email
from flows.stages.base import Draft, StageRun, write_drafts
from flows.stages.signoff import short, signers_of
from flows.stages.signoff import signed_drafts as signoff_check
from flows.templates import KEY, LANGUAGES, UNLESS_RULE, ProcessTemplate, instruments, template_of
from flows.wording import plural
from store import queries
from store.errors import InvalidInput, NotFound, SamverkanError, StateError
from store.models import (
    Cycle,
    CycleMember,
    CycleStatus,
    Meeting,
    MessageStatus,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow

DEFAULT_TEMPLATE = {"meeting": "workshop", "followup": "followup", "reflection": "reflection"}
DEFAULT_QUESTIONS = ["scale-now", "what-is-better", "difference-made", "one-step-up"]
UNSENT = [MessageStatus.queued.value, MessageStatus.retry.value]


@dataclass
class Effects:
    """What an operation does, in the words the coordinator reads (dry run or not)."""

    title: str
    version: tuple[int, int] = (0, 0)
    changes: list[str] = field(default_factory=list)
    now: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.title} (plan version {self.version[0]} -> {self.version[1]})"]
        out += [f"  change: {c}" for c in self.changes]
        out += [f"  now:    {n}" for n in self.now]
        out += [f"  later:  {n}" for n in self.later]
        out += [f"  drop:   {d}" for d in self.dropped]
        if len(out) == 1:
            out.append("  nothing else changes")
        return out


def plan_of(stages: Iterable[Stage]) -> planning.Plan:
    items = {i.key: i for i in planning.plan_items(list(stages))}
    return planning.Plan(
        tuple(
            planning.Step(
                key=s.key,
                kind=s.kind,
                timing=items[s.key].timing,
                status=str(s.status),
                meeting_start=items[s.key].meeting_start,
                reminder=bool(s.unless),
            )
            for s in stages
        )
    )


class Change:
    """One operation on one cycle, inside its transaction."""

    def __init__(self, session: Session, settings: Settings, cycle: Cycle, effects: Effects):
        self.session, self.settings, self.cycle, self.effects = session, settings, cycle, effects
        self.template: ProcessTemplate = template_of(settings, cycle)
        self.tz = planning.zone(cycle.timezone)
        self.now = utcnow()
        self.stages = queries.stages_of(session, cycle_id=pk(cycle))
        self.plan = plan_of(self.stages)
        self.forecast_done: set[str] = set()

    # -- helpers ------------------------------------------------------------------------------

    def when(self, value: datetime) -> str:
        return f"{value.astimezone(self.tz):%Y-%m-%d %H:%M}"

    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        return queries.get_stage(self.session, cycle_id=pk(self.cycle), key=key)

    def run(self, stage: Stage) -> StageRun:
        return StageRun(self.session, self.settings, self.cycle, stage, self.template, self.now)

    def drop_messages(self, stage: Stage, statuses: list[str], what: str) -> None:
        dropped = queries.drop_stage_messages(self.session, stage_id=pk(stage), statuses=statuses)
        if dropped:
            self.effects.dropped.append(f"{plural(dropped, what)} of {stage.key}")

    def forecast(self, stage: Stage) -> None:
        """Say who a stage that has not run would reach if it ran now; check it renders."""
        if stage.key in self.forecast_done:
            return
        self.forecast_done.add(stage.key)
        run = self.run(stage)
        render_every_email(run)  # a template error stops it here
        kind = KINDS[stage.kind]
        reach = len(kind.recipients(run))
        approval = ", needs approval" if stage.approval_required and not stage.approved_at else ""
        head = f"{stage.key} ({stage.kind}) at {self.when(stage.due_at)}"
        if stage.kind == "reflection":
            self.effects.later.append(f"{head}: to the coordinator{approval}")
            return
        whom = f"audience {stage.audience}" + (f"; unless {stage.unless}" if stage.unless else "")
        total = len(run.active_members)
        self.effects.later.append(
            f"{head}: {reach} of {plural(total, 'recipient')} if it ran now ({whom}){approval}"
        )

    def held_note(self, plan: planning.Plan, step: planning.Step) -> str:
        if not step.is_held:
            return ""
        meeting_key = plan.cancelled_meeting_behind(step.key)
        return (
            f"(it follows the cancelled {meeting_key}; reschedule or move it to run it, or skip it)"
        )

    def look_at_signoff(self) -> None:
        """After the change: render each stage still to be signed as it would now send, void
        the signatures on texts it changed (a dry run says so, and keeps them), and say what
        waiting for sign-off does to the stages after it."""
        stages = queries.stages_of(self.session, cycle_id=pk(self.cycle))
        for i, stage in enumerate(stages):
            if not stage.signoff or stage.status not in NOT_RUN:
                continue
            try:
                state = current_texts(self.session, self.settings, self.cycle, stage)
            except SamverkanError as exc:  # it fails on its own when due; this change goes on
                self.effects.later.append(f"{stage.key}: its texts to sign do not render: {exc}")
                continue
            for sig in state.voided:
                self.effects.changes.append(
                    f"{stage.key}: {sig.organisation}'s signature ({sig.account_email}) on "
                    f"text {short(sig.content_hash)} is void: what it signed is no longer sent; "
                    f"{sig.organisation}'s signers are emailed"
                )
            for org, wanted in state.missing.items():
                if wanted and not signers_of(self.session, org):
                    self.effects.later.append(
                        f"{stage.key}: {org} has no signer account yet to ask: add one with "
                        f"samverkan users add EMAIL --role signer --org '{org}'"
                    )
            if not state.complete:
                behind = [s.key for s in stages[i + 1 :] if s.status in NOT_RUN]
                then = f"; until then {', '.join(behind)} wait behind it" if behind else ""
                self.effects.later.append(
                    f"{stage.key} is sent only when {state.waiting_line()} "
                    f"{'has' if len([o for o, w in state.missing.items() if w]) == 1 else 'have'}"
                    f" signed (due {self.when(stage.due_at)}){then}"
                )

    # -- applying a new plan ------------------------------------------------------------------

    def apply(self, new: planning.Plan, *, added: Stage | None = None) -> None:
        """Store ``new``: positions, timings, statuses, due times; describe what moved."""
        old_due = self.plan.due()
        due = new.due()
        old_steps = {s.key: s for s in self.plan.steps}
        rows = {s.key: s for s in self.stages}
        if added is not None:
            rows[added.key] = added
        old_order = [s.key for s in self.plan.steps]
        new_order = [s.key for s in new.steps]
        for position, step in enumerate(new.steps):
            row = rows[step.key]
            before = old_steps.get(step.key)
            row.position = position * 10
            row.at, row.anchor_key = step.timing.at, step.timing.anchor
            row.offset_seconds = int(step.timing.offset.total_seconds())
            # Only a stage still to run gets a new due time: one that ran keeps the time it
            # ran at, one that was dropped or is held the time it had.
            stored_due, moves = row.due_at, before is None or step.is_open
            if moves:
                row.due_at = due[step.key]
            if step.meeting_start is not None:
                row.config = {**row.config, "starts_at": step.meeting_start.isoformat()}
            held = self.held_note(new, step)
            if before is None:
                row.status = StageStatus(step.status)
                self.effects.changes.append(
                    f"add {step.key} ({step.kind}), due {self.when(due[step.key])}, "
                    f"{planning.Timing.describe(step.timing)}" + (f", held {held}" if held else "")
                )
            else:
                if before.status != step.status:
                    row.status = StageStatus(step.status)
                    self.effects.changes.append(
                        f"{step.key}: {before.status} -> {step.status}"
                        + (f" {held}" if held else "")
                    )
                if before.meeting_start != step.meeting_start and step.meeting_start:
                    assert before.meeting_start is not None
                    self.effects.changes.append(
                        f"{step.key} starts {self.when(before.meeting_start)} -> "
                        f"{self.when(step.meeting_start)}"
                    )
                if moves and stored_due != due[step.key]:
                    self.effects.changes.append(
                        f"{step.key} due {self.when(stored_due)} -> "
                        f"{self.when(due[step.key])} ({planning.Timing.describe(step.timing)})"
                    )
                elif before.timing.anchor != step.timing.anchor:
                    self.effects.changes.append(
                        f"{step.key} now follows {step.timing.anchor} "
                        f"({planning.Timing.describe(step.timing)})"
                    )
            self.session.add(row)
        if [k for k in old_order if k in new_order] != [k for k in new_order if k in old_order]:
            self.effects.changes.append(f"order: {', '.join(new_order)}")
        self.session.flush()
        self.stages = sorted(rows.values(), key=lambda s: s.position)
        for step in new.steps:  # everything still to run that this change touched
            before = old_steps.get(step.key)
            touched = (
                before is None
                or old_due[step.key] != due[step.key]
                or (before.status != step.status or before.timing != step.timing)
            )
            if step.is_open and touched:
                self.forecast(rows[step.key])
        self.plan = new

    # -- meetings -----------------------------------------------------------------------------

    def announce(self, stage: Stage, *, method: str, change: dict[str, Any]) -> None:
        """Send every invited participant a calendar update or cancellation."""
        found = queries.meeting_of(self.session, stage_id=pk(stage))
        assert found is not None
        mtg: Meeting = found
        mtg.sequence += 1
        starts = datetime.fromisoformat(stage.config["starts_at"])
        mtg.starts_at = starts
        mtg.ends_at = starts + timedelta(minutes=int(stage.config["duration_minutes"]))
        mtg.cancelled = method == "CANCEL"
        self.session.add(mtg)
        self.session.flush()
        run = self.run(stage)
        suffix = "cancel" if method == "CANCEL" else "update"
        template = f"{stage.template}-{suffix}"
        people = meeting.attendees(run, mtg)
        drafts = [
            meeting.notice(run, mtg, r, method=method, template=template, change=change)
            for r in people
        ]
        self.queue(run, drafts, category=f"meeting-{suffix}", revision=mtg.sequence)
        what = "calendar cancellation" if method == "CANCEL" else "calendar update"
        self.effects.now.append(
            f"{plural(len(drafts), what)} for {stage.key} (same UID, SEQUENCE "
            f"{mtg.sequence}) to everyone invited; delivered by the next tick"
        )
        if stage.signoff:
            self.effects.now.append(
                f"the {what} is not signed by {', '.join(stage.signoff)}: sign-off covers "
                f"the invitation of {stage.key}, and its update goes out as it is"
            )

    def queue(self, run: StageRun, drafts: list[Draft], *, category: str, revision: int) -> None:
        write_drafts(run, drafts, category=category, status=MessageStatus.queued, revision=revision)
        self.session.flush()


class StalePlan(StateError):
    """A change made on a preview of a plan that has changed since (``expect_version``)."""


def _stale(cycle_id: int) -> StalePlan:
    return StalePlan(
        f"the plan of cycle {cycle_id} changed since you looked at it (another edit or a tick); "
        f"look again with --dry-run or: samverkan cycle show {cycle_id}"
    )


def change_cycle(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    title: str,
    operate: Callable[[Change], None],
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
    action: str,
    stage_key: str | None = None,
    allowed: Iterable[CycleStatus] = (CycleStatus.running, CycleStatus.paused),
) -> Effects:
    """Run ``operate`` on the cycle in one transaction; roll back on a dry run."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            # The first statement writes: it takes the lock on this cycle's row (on SQLite, the
            # database's write lock), so edits of one cycle queue up and each reads the plan
            # as the edit before it left it.
            queries.bump_plan_version(session, cycle_id=cycle_id)
            cycle = queries.get_cycle(session, cycle_id=cycle_id)
            version = cycle.plan_version - 1
            if expect_version is not None and expect_version != version:
                raise _stale(cycle_id)
            if cycle.status not in set(allowed):
                raise StateError(f"cycle {cycle_id} is {cycle.status}; this cannot change it")
            effects = Effects(title=title, version=(version, version + 1))
            change = Change(session, settings, cycle, effects)
            operate(change)
            change.look_at_signoff()
            queries.audit(
                session,
                cycle_id=cycle_id,
                action=action,
                stage_key=stage_key,
                detail="; ".join(" ".join(line.split()) for line in effects.lines()),
                reason=reason,
            )
            if dry_run:
                session.rollback()
            else:
                session.commit()
            return effects
        except BaseException:
            session.rollback()
            raise


# Operations --------------------------------------------------------------------------------


def _check_template(change: Change, name: str, kind: str) -> None:
    needed = [name] + ([f"{name}-update", f"{name}-cancel"] if kind == "meeting" else [])
    for n in needed:
        for lang in LANGUAGES:
            if not change.template.emails.exists(n, lang):
                raise NotFound(f"no email template {n!r} in {change.template.folder / 'emails'}")


def _check_unless(change: Change, unless: str | None) -> None:
    if unless is None:
        return
    if not UNLESS_RULE.match(unless):
        raise InvalidInput(
            f"--unless must be accepted, responded or answered:<stage>, not {unless!r}"
        )
    if unless.startswith("answered:"):
        change.stage(unless[9:])


def timing_from(
    change: Change, *, at: str | None, after: str | None, before: str | None, offset: str | None
) -> planning.Timing:
    given = [x for x in (at, after, before) if x]
    if len(given) != 1:
        raise InvalidInput("give exactly one of --at, --after or --before")
    if at:
        if offset:
            raise InvalidInput("--offset goes with --after or --before, not with --at")
        return planning.Timing(at=planning.parse_when(at, change.tz, what="--at"))
    delta = planning.parse_duration(offset or "0")
    anchor = after or before
    assert anchor is not None
    change.stage(anchor)
    return planning.Timing(anchor=anchor, offset=-delta if before else delta)


def add_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    kind: str,
    at: str | None = None,
    after: str | None = None,
    before: str | None = None,
    offset: str | None = None,
    template: str | None = None,
    audience: str | None = None,
    unless: str | None = None,
    approval: bool = False,
    starts: str | None = None,
    duration: str = "2h",
    location: str = "",
    questions: list[str] | None = None,
    signoff: list[str] | None = None,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    import re

    if not re.match(KEY, key):
        raise InvalidInput(f"stage key {key!r}: use lower-case letters, digits and dashes")
    if kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r} (use one of: {', '.join(KINDS)})")
    name = template or DEFAULT_TEMPLATE.get(kind)
    if not name:
        raise InvalidInput(f"an {kind} stage needs --template NAME (an email of the template)")
    parse_audience(audience)
    if kind != "meeting" and starts:
        raise InvalidInput("--starts goes with --kind meeting")
    if signoff and kind == "reflection":
        raise InvalidInput("--signoff: a reflection is not signed by the agencies")

    def operate(change: Change) -> None:
        _check_template(change, name, kind)
        _check_unless(change, unless)
        timing = timing_from(change, at=at, after=after, before=before, offset=offset)
        config: dict[str, Any] = {}
        meeting_start = None
        if kind == "meeting":
            if not starts:
                raise InvalidInput("a meeting needs --starts ISO (when it begins)")
            meeting_start = planning.parse_when(starts, change.tz, what="--starts")
            if meeting_start < change.now:
                raise InvalidInput(f"--starts {starts} is in the past")
            minutes = int(planning.parse_duration(duration) / timedelta(minutes=1))
            if minutes <= 0:
                raise InvalidInput("--duration must be longer than 0")
            config = {
                "starts_at": meeting_start.isoformat(),
                "duration_minutes": minutes,
                "location": location,
            }
        if kind == "followup":
            chosen = questions or DEFAULT_QUESTIONS
            unknown = [q for q in chosen if q not in change.template.questions]
            if unknown:
                raise InvalidInput(f"unknown question {unknown[0]!r}")
            config["questions"] = chosen
            config["instruments"] = instruments.bind(
                change.session, change.template.questions, chosen, cycle_id=pk(change.cycle)
            )
        step = planning.Step(key, kind, timing, meeting_start=meeting_start, reminder=bool(unless))
        new = change.plan.add(step)
        row = Stage(
            cycle_id=pk(change.cycle),
            key=key,
            kind=kind,
            position=0,
            due_at=change.now,
            template=name,
            audience=parse_audience(audience).text,
            unless=unless,
            approval_required=approval,
            signoff=check_organisations(change.session, signoff or []),
            config=config,
        )
        change.apply(new, added=row)
        if change.cycle.status == CycleStatus.completed:
            change.cycle.status = CycleStatus.running
            change.effects.changes.append(f"cycle {cycle_id}: completed -> running")

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"add stage {key} to cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.add",
        stage_key=key,
        allowed=(CycleStatus.running, CycleStatus.paused, CycleStatus.completed),
    )


def move_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    after: str | None = None,
    before: str | None = None,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    def operate(change: Change) -> None:
        change.apply(change.plan.move(key, after=after, before=before))

    where = f"after {after}" if after else f"before {before}"
    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"move {key} {where} in cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.move",
        stage_key=key,
    )


def skip_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    def operate(change: Change) -> None:
        change.apply(change.plan.skip(key))
        change.drop_messages(change.stage(key), [MessageStatus.draft.value], "draft")

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"skip {key} in cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.skip",
        stage_key=key,
    )


def edit_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    template: str | None = None,
    audience: str | None = None,
    approval: bool | None = None,
    unless: str | None = None,
    signoff: list[str] | None = None,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    """Change a stage that has not run. ``signoff``: the organisations that must sign it
    (replacing those named before; an empty list: no sign-off)."""
    if (template, audience, approval, unless, signoff) == (None,) * 5:
        raise InvalidInput(
            "nothing to edit: give --template, --audience, --unless, --approval or --signoff"
        )
    chosen = parse_audience(audience) if audience is not None else None

    def operate(change: Change) -> None:
        stage = change.stage(key)
        new = change.plan.edit(key)
        if template is not None:
            _check_template(change, template, stage.kind)
            stage.template = template
        if chosen is not None:
            stage.audience = chosen.text
        if unless is not None:
            _check_unless(change, unless or None)
            stage.unless = unless or None
        if approval is not None:
            stage.approval_required = approval
        if signoff is not None:
            if signoff and stage.kind == "reflection":
                raise InvalidInput("--signoff: a reflection is not signed by the agencies")
            stage.signoff = check_organisations(change.session, signoff)
        stage.approved_at = None  # what was approved is not what will be sent
        if stage.status == StageStatus.approved:
            stage.status = StageStatus.pending
        change.drop_messages(stage, [MessageStatus.draft.value], "draft")
        changed = [
            f"{n}={v}"
            for n, v in (
                ("template", template),
                ("audience", audience),
                ("unless", unless),
                ("approval", approval),
                ("signoff", ", ".join(signoff) if signoff else ("none" if signoff == [] else None)),
            )
            if v is not None
        ]
        change.effects.changes.append(f"{key}: {', '.join(changed)}")
        change.apply(new)
        change.forecast(stage)

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"edit {key} in cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.edit",
        stage_key=key,
    )


def reschedule_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    at: str,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    def operate(change: Change) -> None:
        stage = change.stage(key)
        when = planning.parse_when(at, change.tz, what="--at")
        if when < change.now:
            raise InvalidInput(f"--at {at} is in the past")
        old_start = change.plan.get(key).meeting_start
        change.apply(change.plan.reschedule(key, when))
        if stage.kind == "meeting" and stage.status == StageStatus.done:
            assert old_start is not None
            change.announce(
                stage, method="REQUEST", change={"old_starts": old_start.astimezone(change.tz)}
            )

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"reschedule {key} to {at} in cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.reschedule",
        stage_key=key,
    )


def cancel_stage(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    def operate(change: Change) -> None:
        stage = change.stage(key)
        announced = change.plan.get(key).announced_meeting
        change.apply(change.plan.cancel(key))
        change.drop_messages(stage, [MessageStatus.draft.value], "draft")
        if announced:
            change.drop_messages(stage, UNSENT, "unsent invitation")
            change.announce(stage, method="CANCEL", change={})
        for s in change.stages:
            if s.status == StageStatus.cancelled and s.key != key:
                change.drop_messages(s, [MessageStatus.draft.value], "draft")

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"cancel {key} in cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="stage.cancel",
        stage_key=key,
    )


def set_cycle_status(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    to: CycleStatus,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    allowed = {
        CycleStatus.paused: (CycleStatus.running,),
        CycleStatus.running: (CycleStatus.paused,),
        CycleStatus.cancelled: (CycleStatus.running, CycleStatus.paused),
    }[to]
    verb = {
        CycleStatus.paused: "pause",
        CycleStatus.running: "resume",
        CycleStatus.cancelled: "cancel",
    }[to]

    def operate(change: Change) -> None:
        change.effects.changes.append(f"cycle {cycle_id}: {change.cycle.status} -> {to}")
        change.cycle.status = to
        change.session.add(change.cycle)
        if to == CycleStatus.paused:
            change.effects.later.append(
                "nothing runs until: samverkan cycle resume "
                f"{cycle_id}; messages already queued are still sent"
            )
        if to != CycleStatus.cancelled:
            if to == CycleStatus.running:
                due = [
                    s.key
                    for s in change.stages
                    if s.status in planning.OPEN and s.due_at <= change.now
                ]
                if due:
                    change.effects.later.append(f"due now, run by the next tick: {', '.join(due)}")
            return
        announced = [
            s
            for s in change.stages
            if s.kind == "meeting"
            and s.status == StageStatus.done
            and datetime.fromisoformat(s.config["starts_at"]) > change.now
        ]
        change.apply(change.plan.cancel_remaining())
        for s in change.stages:
            change.drop_messages(s, [MessageStatus.draft.value, *UNSENT], "unsent message")
        for s in announced:
            change.announce(s, method="CANCEL", change={})

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"{verb} cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action=f"cycle.{verb}",
        allowed=allowed,
    )


def _signed(change: Change, stage: Stage, drafts: list[Draft]) -> list[Draft]:
    """A signed stage's catch-up: only the messages that are a text its organisations signed
    (a newcomer's language or role may have no signed text, or the email may have changed)."""
    if not stage.signoff:
        return drafts
    kept, why = signoff_check(change.session, stage, drafts)
    if len(kept) < len(drafts):
        change.effects.now.append(
            f"no catch-up of {stage.key} to {plural(len(drafts) - len(kept), 'newcomer')}: "
            f"{why}; add a stage for them and have it signed"
        )
    return kept


def add_participants(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    emails: list[str] | None = None,
    audience: str | None = None,
    catch_up: bool = True,
    dry_run: bool = False,
    reason: str | None = None,
    expect_version: int | None = None,
) -> Effects:
    """Add late joiners; they get the invitation and the current meeting invite."""
    if bool(emails) == bool(audience):
        raise InvalidInput("give --email (one or more) or --audience, not both")
    chosen = parse_audience(audience) if audience else None

    def operate(change: Change) -> None:
        everyone = [(p, o) for p, o in queries.list_participants(change.session) if not p.erased]
        if chosen is not None:
            picked = chosen.select(everyone)
        else:
            assert emails is not None
            by_email = {p.email_key: (p, o) for p, o in everyone}
            missing = [e for e in emails if e.strip().lower() not in by_email]
            if missing:
                raise NotFound(
                    f"no participant with email {missing[0]} "
                    "(import them first: samverkan participants import FILE.csv)"
                )
            picked = [by_email[e.strip().lower()] for e in emails]
        current = {p.id for p, _ in queries.members(change.session, cycle_id=cycle_id)}
        new = [(p, o) for p, o in picked if p.id not in current]
        already = len(picked) - len(new)
        if already:
            change.effects.changes.append(
                f"{plural(already, 'person', 'people')} already in the cycle"
            )
        if not new:
            return
        change.session.add_all(CycleMember(cycle_id=cycle_id, participant_id=pk(p)) for p, _ in new)
        change.session.flush()
        names = ", ".join(p.email for p, _ in new)
        change.effects.changes.append(f"add {plural(len(new), 'participant')}: {names}")
        if not catch_up:
            change.effects.later.append("no catch-up: they receive only stages still to run")
            return
        new_ids = {p.id for p, _ in new}
        for stage in change.stages:
            run = change.run(stage)
            if stage.status != StageStatus.done or stage.kind not in ("email", "meeting"):
                continue
            if stage.kind == "email" and stage.unless:
                continue  # a reminder of something they never got
            kind = KINDS[stage.kind]
            people = [r for r in kind.recipients(run) if r.participant_id in new_ids]
            if stage.kind == "meeting":
                found = queries.meeting_of(change.session, stage_id=pk(stage))
                starts = datetime.fromisoformat(stage.config["starts_at"])
                if found is None or found.cancelled or starts <= change.now:
                    continue
                kind.prepare(run)
                drafts = _signed(change, stage, [kind.draft(run, r) for r in people])
                kind.admit(run, [d.recipient for d in drafts])
                change.queue(run, drafts, category="meeting", revision=found.sequence)
            else:
                drafts = _signed(change, stage, [kind.draft(run, r) for r in people])
                change.queue(run, drafts, category="email", revision=0)
            if drafts:
                change.effects.now.append(
                    f"catch-up: {plural(len(drafts), 'message')} of {stage.key} to the "
                    "newcomers; delivered by the next tick"
                )

    return change_cycle(
        engine,
        settings,
        cycle_id=cycle_id,
        title=f"add participants to cycle {cycle_id}",
        operate=operate,
        dry_run=dry_run,
        reason=reason,
        expect_version=expect_version,
        action="cycle.add-participants",
    )


__all__ = [
    "Effects",
    "StalePlan",
    "add_participants",
    "add_stage",
    "cancel_stage",
    "change_cycle",
    "edit_stage",
    "move_stage",
    "reschedule_stage",
    "set_cycle_status",
    "skip_stage",
]
