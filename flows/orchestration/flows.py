"""Prefect flows: ``tick``, per-cycle ``advance`` and ``deliver``, around the plain tick of
flows/cycles/tick.py.

``tick(now)`` asks the store which running cycles have a stage due (one query), runs
``advance`` for each (a flow run per cycle, a task run per stage), then drains the outbox. In
distributed mode (``fan_out``, see flows/orchestration/deploy.py) it starts those ``advance``
runs on the work pool instead, and each starts ``deliver`` runs there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flows.orchestration.prefect_settings import apply_defaults

apply_defaults()  # before Prefect is imported

from prefect import flow  # noqa: E402

from flows.cycles import tick as plain  # noqa: E402
from flows.cycles.delivery import deliver  # noqa: E402
from flows.cycles.tick import TickReport  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.stages import task_for  # noqa: E402
from flows.stages.base import StageOutcome  # noqa: E402
from store import queries  # noqa: E402
from store.db import open_store, session_scope  # noqa: E402


@contextmanager
def quiet_prefect() -> Iterator[None]:
    """Flow heartbeats off: each flow call costs about a second more with them on.

    The setting can only be disabled through ``temporary_settings``, not by a variable.
    """
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


# Deployment names (``samverkan deploy``): flow name / deployment name.
TICK_DEPLOYMENT = "tick/samverkan-tick"
ADVANCE_DEPLOYMENT = "advance/samverkan-advance"
DELIVER_DEPLOYMENT = "deliver/samverkan-deliver"


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
    given, now = now, plain.as_time(now)
    settings = load_settings()
    engine = open_store(settings.database_url)
    outcomes = plain.advance_cycle(engine, settings, cycle_id, now, run_stage=task_for)
    if senders > 0 and any(o.messages for o in outcomes):
        _submit(DELIVER_DEPLOYMENT, {"cycle_id": cycle_id, **_clock(given, now)}, copies=senders)
    return outcomes


@flow(name="deliver", validate_parameters=False, log_prints=False)
def send(cycle_id: int | None = None, now: datetime | str | None = None) -> str:
    """Deliver what is ready in the outbox at ``now`` (of one cycle, or all). Several runs at
    once claim disjoint messages (SKIP LOCKED on PostgreSQL)."""
    settings = load_settings()
    engine = open_store(settings.database_url)
    report = deliver(settings, engine, plain.as_time(now), cycle_id=cycle_id)
    return str(report)


@flow(name="tick", validate_parameters=False, log_prints=False)
def tick(now: datetime | str | None = None, fan_out: bool = False, senders: int = 2) -> TickReport:
    """Run what is due at ``now`` in every running cycle, then deliver the outbox.

    ``fan_out`` (distributed mode, set by ``samverkan deploy``): start one ``advance`` run
    per due cycle on the work pool instead, each followed by ``senders`` ``deliver`` runs;
    messages waiting for a retry get ``senders`` ``deliver`` runs of their own.
    """
    given, now = now, plain.as_time(now)
    settings = load_settings()
    engine = open_store(settings.database_url)
    if not fan_out:
        return plain.run_tick(
            settings,
            engine,
            now,
            advance=lambda cycle_id: advance(cycle_id, now),
            deliver=lambda: deliver(settings, engine, now),
        )
    report = TickReport(now=now, in_doubt=plain.find_in_doubt(engine, settings, now))
    due = plain.due_cycles(engine, now)
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
    report.completed = plain.complete_finished(engine, now)
    return report


def run_tick(now: datetime) -> TickReport:
    """One tick as Prefect flow runs (``samverkan worker``, the demo, a tick against a
    configured Prefect server)."""
    with quiet_prefect():
        return tick(now)


__all__ = [
    "ADVANCE_DEPLOYMENT",
    "DELIVER_DEPLOYMENT",
    "TICK_DEPLOYMENT",
    "TickReport",
    "advance",
    "quiet_prefect",
    "run_tick",
    "send",
    "tick",
]
