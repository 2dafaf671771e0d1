"""Prefect flows: ``launch``, ``tick``, per-cycle ``advance`` and ``deliver``.

Our database owns the plan; Prefect runs it. ``tick(now)`` asks the store which running
cycles have a stage due (one query), runs ``advance`` for each, then drains the outbox. In
distributed mode (``fan_out``, see flows/distributed.py) it starts those ``advance`` runs on
the work pool instead, and each starts ``deliver`` runs there.
``advance`` re-reads the plan before every stage, so a re-sequencing made between two stages
takes effect at once, and it runs a stage only when every stage before it in the plan has
finished: an invitation waiting for approval holds back the calendar invite behind it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.models import CycleStatus

# Quiet, offline defaults for Prefect; set before Prefect is imported, and only where the
# user has not chosen otherwise. Without them, runs on a machine with no internet printed
# telemetry errors and exit tracebacks.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}
_EMBEDDED_DEFAULTS = {
    # Embedded (ephemeral) API only: no UI to serve, and no task-run recorder, whose
    # background flush produced tracebacks at process exit.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
}
for _name, _value in _PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
if not os.environ.get("PREFECT_API_URL"):
    for _name, _value in _EMBEDDED_DEFAULTS.items():
        os.environ.setdefault(_name, _value)

from prefect import flow  # noqa: E402

from flows.cycles.delivery import deliver  # noqa: E402
from flows.cycles.launch import launch_cycle  # noqa: E402
from flows.cycles.plan import first_runnable  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.stages import task_for  # noqa: E402
from flows.stages.base import StageOutcome  # noqa: E402
from flows.templates import template_of  # noqa: E402
from flows.wording import plural  # noqa: E402
from messaging.outbox import DrainReport  # noqa: E402
from store import queries  # noqa: E402
from store.db import open_store, session_scope  # noqa: E402
from store.errors import InvalidInput, SamverkanError  # noqa: E402
from store.models import Stage  # noqa: E402
from store.types import utcnow  # noqa: E402


@contextmanager
def quiet_prefect() -> Iterator[None]:
    """Flow heartbeats off: each flow call costs about a second more with them on.

    The setting can only be disabled through ``temporary_settings``, not by a variable.
    """
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


@dataclass
class TickReport:
    now: datetime
    stages: list[tuple[int, StageOutcome]] = field(default_factory=list)
    delivery: DrainReport = field(default_factory=DrainReport)
    completed: list[int] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)  # advance runs started on the pool

    def lines(self) -> list[str]:
        out = [f"tick at {self.now.isoformat()}"]
        for cycle_id, s in self.stages:
            note = f" ({s.note})" if s.note else ""
            count = plural(s.messages, "message")
            kind = f" ({s.kind})" if s.kind else ""
            out.append(f"  cycle {cycle_id}: {s.key}{kind} -> {s.status}, {count}{note}")
        out.extend(f"  cycle {c}: handed to the work pool" for c in self.handed_over)
        if not self.stages and not self.handed_over:
            out.append("  nothing was due")
        out.append(f"  delivery: {self.delivery}")
        out.extend(f"  cycle {c} completed" for c in self.completed)
        return out


def _next_runnable(stages: list[Stage], now: datetime) -> Stage | None:
    key = first_runnable(((s.key, str(s.status), s.due_at) for s in stages), now)
    return next((s for s in stages if s.key == key), None)


# Deployment names (``samverkan deploy``): flow name / deployment name.
TICK_DEPLOYMENT = "tick/samverkan-tick"
ADVANCE_DEPLOYMENT = "advance/samverkan-advance"
DELIVER_DEPLOYMENT = "deliver/samverkan-deliver"


def _as_time(now: datetime | str | None) -> datetime:
    """``now`` as given, parsed from a deployment's JSON parameter, or the real time."""
    if now is None:
        return utcnow()
    when = datetime.fromisoformat(now) if isinstance(now, str) else now
    if when.tzinfo is None:
        raise InvalidInput(f"now={now!r} has no time zone")
    return when


def _clock(given: datetime | str | None, now: datetime) -> dict[str, str]:
    """The ``now`` parameter for the runs a flow starts: a time it was given is passed on, so
    that they decide by the same clock; on the real clock each run reads it when it starts."""
    return {} if given is None else {"now": now.isoformat()}


def _submit(deployment: str, parameters: dict[str, Any], copies: int = 1) -> None:
    """Start runs of a deployment on its work pool, without waiting for them."""
    from prefect.deployments import run_deployment

    for _ in range(copies):
        run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)


@flow(name="advance", validate_parameters=False, log_prints=False)
def advance(
    cycle_id: int, now: datetime | str | None = None, senders: int = 0
) -> list[StageOutcome]:
    """Run every stage of one cycle that is due at ``now``, in the current plan's order.

    ``senders`` > 0 (distributed mode): then start that many ``deliver`` runs on the work
    pool for what the stages queued.
    """
    given, now = now, _as_time(now)
    settings = load_settings()
    engine = open_store(settings.database_url)
    outcomes: list[StageOutcome] = []
    with session_scope(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
    try:
        template = template_of(settings, cycle)
    except SamverkanError as exc:
        # This cycle cannot run (its template is gone or broken): say so, and let the tick go
        # on with the other cycles instead of failing the flow.
        return [StageOutcome("(cycle)", "", "not run", 0, str(exc))]
    while True:
        with session_scope(engine) as session:  # the plan is re-read before each stage
            cycle = queries.get_cycle(session, cycle_id=cycle_id)
            if cycle.status != CycleStatus.running:
                break
            stage = _next_runnable(queries.stages_of(session, cycle_id=cycle_id), now)
        if stage is None:
            break
        outcome = task_for(stage.kind)(engine, settings, template, stage_id=stage.id, now=now)
        if outcome is None:  # another tick ran it; look again
            continue
        outcomes.append(outcome)
    if senders > 0 and any(o.messages for o in outcomes):
        _submit(DELIVER_DEPLOYMENT, {"cycle_id": cycle_id, **_clock(given, now)}, copies=senders)
    return outcomes


@flow(name="deliver", validate_parameters=False, log_prints=False)
def send(cycle_id: int | None = None, now: datetime | str | None = None) -> str:
    """Deliver what is ready in the outbox at ``now`` (of one cycle, or all). Several runs at
    once claim disjoint messages (SKIP LOCKED on PostgreSQL)."""
    settings = load_settings()
    report = deliver(settings, open_store(settings.database_url), _as_time(now), cycle_id=cycle_id)
    return str(report)


def _complete_finished(engine: Any, now: datetime) -> list[int]:
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


@flow(name="tick", validate_parameters=False, log_prints=False)
def tick(now: datetime | str | None = None, fan_out: bool = False, senders: int = 2) -> TickReport:
    """Run what is due at ``now`` in every running cycle, then deliver the outbox.

    ``fan_out`` (distributed mode, set by ``samverkan deploy``): start one ``advance`` run
    per due cycle on the work pool instead, each followed by ``senders`` ``deliver`` runs;
    messages waiting for a retry get ``senders`` ``deliver`` runs of their own.
    """
    given, now = now, _as_time(now)
    settings = load_settings()
    engine = open_store(settings.database_url)
    report = TickReport(now=now)
    with session_scope(engine) as session:
        due = queries.due_cycle_ids(session, now=now)
    if fan_out:
        for cycle_id in due:
            _submit(
                ADVANCE_DEPLOYMENT,
                {"cycle_id": cycle_id, "senders": senders, **_clock(given, now)},
            )
        report.handed_over = list(due)
        with session_scope(engine) as session:
            ready = queries.ready_messages(session, now=now)
        if ready:
            _submit(DELIVER_DEPLOYMENT, _clock(given, now), copies=senders)
        report.completed = _complete_finished(engine, now)
        return report
    for cycle_id in due:
        report.stages.extend((cycle_id, o) for o in advance(cycle_id, now))
    report.delivery = deliver(settings, engine, now)
    report.completed = _complete_finished(engine, now)
    return report


@flow(name="launch", validate_parameters=False, log_prints=False)
def launch(
    template: str,
    name: str,
    start: str,
    variables: dict[str, str],
    timezone: str | None = None,
    audience: str | None = None,
) -> int:
    """Launch a cycle as a flow run (for deployments); the CLI calls launch_cycle directly."""
    settings = load_settings()
    return launch_cycle(
        open_store(settings.database_url),
        settings,
        template=template,
        name=name,
        start=start,
        variables=variables,
        timezone=timezone,
        audience=audience,
    )


def run_tick(now: datetime) -> TickReport:
    with quiet_prefect():
        return tick(now)


__all__ = [
    "ADVANCE_DEPLOYMENT",
    "DELIVER_DEPLOYMENT",
    "TICK_DEPLOYMENT",
    "TickReport",
    "advance",
    "launch",
    "quiet_prefect",
    "run_tick",
    "send",
    "tick",
]
