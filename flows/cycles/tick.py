"""One tick, as plain functions: what is due in every running cycle, run in plan order, then
the outbox drained.

These functions know nothing of Prefect. flows/orchestration/flows.py wraps them in Prefect
flows and tasks (``samverkan worker``, the distributed mode, the demo); a one-shot
``samverkan tick`` with no Prefect server configured calls them directly (``tick_direct``),
so it answers in well under a second instead of paying the start of Prefect's embedded
server, and leaves no server process behind when it is killed.

``advance_cycle`` re-reads the plan before every stage, so a re-sequencing made between two
stages takes effect at once, and it runs a stage only when every stage before it in the plan
has finished: an invitation waiting for approval holds back the calendar invite behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from flows.cycles.plan import first_runnable
from flows.settings import Settings
from flows.wording import plural
from messaging.outbox import DrainReport
from store import queries
from store.db import session_scope
from store.errors import InvalidInput, SamverkanError
from store.models import CycleStatus, Stage
from store.types import utcnow

if TYPE_CHECKING:
    # The stage kinds (and their templates' Jinja2 and Markdown) load only when a stage runs:
    # a tick with nothing due needs none of them.
    from flows.stages.base import StageOutcome

# Runs one stage: (engine, settings, template, stage_id=, now=, key=) -> outcome, or None when
# another tick ran it first. ``flows.stages.execute`` (which needs no key), or a Prefect task
# around it (whose run is named after the key).
StageRunner = Callable[..., "StageOutcome | None"]


@dataclass
class TickReport:
    now: datetime
    stages: list[tuple[int, StageOutcome]] = field(default_factory=list)
    delivery: DrainReport = field(default_factory=DrainReport)
    completed: list[int] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)  # advance runs started on the pool
    in_doubt: int = 0  # messages whose sender stopped mid-delivery, found by this tick
    signoff: list[str] = field(default_factory=list)  # who was asked or reminded to sign
    mailbox: list[str] = field(default_factory=list)  # what reading the IMAP mailbox did

    def lines(self) -> list[str]:
        out = [f"tick at {self.now.isoformat()}"]
        out.extend(f"  mailbox: {line.strip()}" for line in self.mailbox)
        for cycle_id, s in self.stages:
            note = f" ({s.note})" if s.note else ""
            count = plural(s.messages, "message")
            kind = f" ({s.kind})" if s.kind else ""
            out.append(f"  cycle {cycle_id}: {s.key}{kind} -> {s.status}, {count}{note}")
        out.extend(f"  sign-off: {line}" for line in self.signoff)
        out.extend(f"  cycle {c}: handed to the work pool" for c in self.handed_over)
        if not self.stages and not self.handed_over:
            out.append("  nothing was due")
        if self.in_doubt:
            out.append(
                f"  {plural(self.in_doubt, 'message')} in doubt: a sender stopped while "
                f"{'it was' if self.in_doubt == 1 else 'they were'} in flight; see "
                "samverkan outbox CYCLE --status uncertain; "
                "samverkan outbox resend CYCLE --uncertain sends them again"
            )
        out.append(f"  delivery: {self.delivery}")
        out.extend(f"  cycle {c} completed" for c in self.completed)
        return out


def as_time(now: datetime | str | None) -> datetime:
    """``now`` as given, parsed from a deployment's JSON parameter, or the real time."""
    if now is None:
        return utcnow()
    when = datetime.fromisoformat(now) if isinstance(now, str) else now
    if when.tzinfo is None:
        raise InvalidInput(f"now={now!r} has no time zone")
    return when


def next_runnable(stages: list[Stage], now: datetime) -> Stage | None:
    key = first_runnable(((s.key, str(s.status), s.due_at) for s in stages), now)
    return next((s for s in stages if s.key == key), None)


def advance_cycle(
    engine: Engine,
    settings: Settings,
    cycle_id: int,
    now: datetime,
    *,
    run_stage: Callable[[str], StageRunner],
) -> list[StageOutcome]:
    """Run every stage of one cycle that is due at ``now``, in the current plan's order.

    ``run_stage(kind)`` gives the callable that runs a stage of that kind.
    """
    from flows.templates import template_of

    outcomes: list[StageOutcome] = []
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
    try:
        template = template_of(settings, cycle)
    except SamverkanError as exc:
        # This cycle cannot run (its template is gone or broken): say so, and let the tick go
        # on with the other cycles.
        from flows.stages.base import StageOutcome

        return [StageOutcome("(cycle)", "", "not run", 0, str(exc))]
    while True:
        with session_scope(engine) as session:  # the plan is re-read before each stage
            cycle = queries.get_cycle(session, cycle_id=cycle_id)
            if cycle.status != CycleStatus.running:
                break
            stage = next_runnable(queries.stages_of(session, cycle_id=cycle_id), now)
        if stage is None:
            break
        outcome = run_stage(stage.kind)(
            engine, settings, template, stage_id=stage.id, now=now, key=stage.key
        )
        if outcome is None:  # another tick ran it; look again
            continue
        outcomes.append(outcome)
        if outcome.status == "waiting":  # for sign-off: the stages behind it wait too
            break
    return outcomes


def find_in_doubt(engine: Engine, settings: Settings, now: datetime) -> int:
    """Mark as ``uncertain`` every message, of any cycle, whose sender's lease ran out while
    it was ``sending`` (the sender crashed or was killed): every tick does this first, so
    the coordinator hears of it on the next tick whatever else is due."""
    from messaging.outbox import mark_stale_uncertain

    with session_scope(engine) as session:
        return mark_stale_uncertain(session, now=now, lease_seconds=settings.sending_lease_seconds)


def read_mailbox(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """Read the coordinator's IMAP mailbox first, when SAMVERKAN_IMAP_URL is set, so that a
    bounce that came in leaves its address out of the stages this tick runs. A mailbox that
    cannot be read is one line of the tick's report; the tick goes on.

    Only the counts: the tick's report is also a Prefect artifact, which erasure cannot
    reach, so it names nobody (``samverkan inbox fetch`` and ``cycle show`` do)."""
    if not settings.imap_url:
        return []
    from flows.people.imap import fetch

    try:
        report = fetch(engine, settings, now=now)
    except SamverkanError as exc:
        return [f"not read: {exc}"]
    except Exception as exc:
        return [f"not read: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"]
    return report.lines()[:1] if report.files else []


def signoff_round(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """Look at every stage still waiting for sign-off: a changed template file voids the
    signatures on what it changes, and who must still sign is asked, or reminded."""
    with session_scope(engine) as session:
        if not queries.stages_awaiting_signoff(session):
            return []  # and the stage kinds need not be loaded
    from flows.cycles.signoff import look_around

    return look_around(engine, settings, now)


def due_cycles(engine: Engine, now: datetime) -> list[int]:
    with session_scope(engine) as session:
        return list(queries.due_cycle_ids(session, now=now))


def complete_finished(engine: Engine, now: datetime) -> list[int]:
    """Mark running cycles with nothing ahead at ``now`` as completed (also those whose last
    stages were skipped or cancelled by the coordinator)."""
    done = []
    with session_scope(engine) as session:
        for cycle_id in queries.finished_cycle_ids(session, now=now):
            cycle = queries.get_cycle(session, cycle_id=cycle_id)
            cycle.status = CycleStatus.completed
            session.add(cycle)
            queries.audit(
                session,
                cycle_id=cycle_id,
                action="cycle.completed",
                detail="every stage has finished and no meeting is ahead",
                actor="tick",
            )
            done.append(cycle_id)
    return done


def run_tick(
    settings: Settings,
    engine: Engine,
    now: datetime,
    *,
    advance: Callable[[int], list[StageOutcome]],
    deliver: Callable[[], DrainReport],
) -> TickReport:
    """One tick in one process: ``advance`` each due cycle, ``deliver``, complete the
    finished cycles. The callables are plain functions here, Prefect flows under Prefect."""
    mailbox = read_mailbox(engine, settings, now)
    report = TickReport(now=now, in_doubt=find_in_doubt(engine, settings, now), mailbox=mailbox)
    report.signoff = signoff_round(engine, settings, now)
    for cycle_id in due_cycles(engine, now):
        report.stages.extend((cycle_id, o) for o in advance(cycle_id))
    report.delivery = deliver()
    report.completed = complete_finished(engine, now)
    return report


def tick_direct(settings: Settings, engine: Engine, now: datetime) -> TickReport:
    """The same tick without Prefect: for a one-shot ``samverkan tick`` where no Prefect
    server is configured."""
    from flows.cycles.delivery import deliver
    from flows.stages import execute

    def run_stage(_kind: str) -> Any:
        return lambda *args, key, **kwargs: execute(*args, **kwargs)

    return run_tick(
        settings,
        engine,
        now,
        advance=lambda cycle_id: advance_cycle(
            engine, settings, cycle_id, now, run_stage=run_stage
        ),
        deliver=lambda: deliver(settings, engine, now),
    )
