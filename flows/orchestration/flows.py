"""Prefect flows: ``tick``, per-cycle ``advance`` and ``deliver``, around the plain tick of
flows/cycles/tick.py.

``tick(now)`` asks the store which running cycles have a stage due (one query), runs
``advance`` for each (a flow run per cycle, a task run per stage), then drains the outbox. In
distributed mode (``fan_out``, see flows/orchestration/deploy.py) it starts those ``advance``
runs on the work pool instead, and each starts ``deliver`` runs there.

What Prefect shows is what happened: runs are named after what they work on
(``advance-cycle-3``, ``deliver-cycle-3`` or ``deliver-all``, task runs ``email:invitation``);
a stage that failed is a Failed task run with the reason as its message, while its advance
run goes on with the plan and ends Completed (a failed stage is recorded, not an error of the
run; the failure shows on the task run, in the tick's report and in ``cycle show``). An
advance or tick run fails only when something kept it from doing its work (the database
gone, say). Each tick publishes its report as the markdown artifact ``samverkan-tick``, and a
reflection stage its report as ``reflection-cycle-{id}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flows.orchestration.prefect_settings import apply_defaults

apply_defaults()  # before Prefect is imported

from prefect import flow  # noqa: E402

from flows.cycles import tick as plain  # noqa: E402
from flows.cycles.delivery import deliver  # noqa: E402
from flows.cycles.tick import StageRunner, TickReport  # noqa: E402
from flows.orchestration.limits import shared_limit  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.stages import task_for  # noqa: E402
from flows.stages.base import StageOutcome  # noqa: E402
from store import queries  # noqa: E402
from store.db import open_store, session_scope  # noqa: E402

TICK_ARTIFACT = "samverkan-tick"


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


def reflection_artifact_key(cycle_id: int) -> str:
    return f"reflection-cycle-{cycle_id}"


def _publish(key: str, markdown: Callable[[], str], description: str) -> None:
    """A markdown artifact on the current run. The work it reports on is done and recorded in
    the store: a report that cannot be made or published is logged, not a failed run."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(markdown=markdown(), key=key, description=description)
    except Exception as exc:
        _logger().warning("could not publish the artifact %s: %s", key, exc)


def _logger() -> Any:
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return logging.getLogger("samverkan")


def literal_markdown(lines: list[str]) -> str:
    """Lines shown as they are: in a code fence longer than any run of backticks in them."""
    text = "\n".join(lines)
    longest, run = 0, 0
    for c in text:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}\n"


def publish_reflection(engine: Any, settings: Any, cycle_id: int) -> None:
    """The cycle's reflection report, made again from the store once the stage has run (so
    its own row shows as done), published on the advance run. The same figures and the same
    small-group rule as the report the stage emailed; the
    participants' own words are left out, since erasing a person reaches the copies in the
    store and not one on the Prefect server (they are in the emailed report and in
    ``samverkan report``)."""
    from flows.reporting.report import build_report

    _publish(
        reflection_artifact_key(cycle_id),
        lambda: build_report(engine, settings, cycle_id, "md", words=False),
        f"Reflection report of cycle {cycle_id}",
    )


def _stage_runner(cycle_id: int) -> Callable[[str], StageRunner]:
    """How ``advance`` runs a stage: as its Prefect task, taking the outcome from the task's
    state (a failed stage's task run is Failed and carries its outcome)."""

    def for_kind(kind: str) -> StageRunner:
        task = task_for(kind)

        def run(engine: Any, settings: Any, template: Any, **call: Any) -> StageOutcome | None:
            state = task(engine, settings, template, **call, return_state=True)
            outcome = state.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                raise outcome  # not a stage that failed: something kept it from running
            if kind == "reflection" and outcome is not None and outcome.status != "failed":
                publish_reflection(engine, settings, cycle_id)
            return outcome

        return run

    return for_kind


def _deliver_name() -> str:
    from prefect.runtime import flow_run

    cycle_id = flow_run.parameters.get("cycle_id")
    return "deliver-all" if cycle_id is None else f"deliver-cycle-{cycle_id}"


@flow(
    name="advance",
    flow_run_name="advance-cycle-{cycle_id}",
    validate_parameters=False,
    log_prints=False,
)
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
    outcomes = plain.advance_cycle(
        engine, settings, cycle_id, now, run_stage=_stage_runner(cycle_id)
    )
    if senders > 0 and any(o.messages for o in outcomes):
        _submit(DELIVER_DEPLOYMENT, {"cycle_id": cycle_id, **_clock(given, now)}, copies=senders)
    return outcomes


@flow(name="deliver", flow_run_name=_deliver_name, validate_parameters=False, log_prints=False)
def send(cycle_id: int | None = None, now: datetime | str | None = None) -> str:
    """Deliver what is ready in the outbox at ``now`` (of one cycle, or all). Several runs at
    once claim disjoint messages (SKIP LOCKED on PostgreSQL) and, under a Prefect server,
    share the SMTP caps (flows/orchestration/limits.py)."""
    settings = load_settings()
    engine = open_store(settings.database_url)
    report = deliver(
        settings, engine, plain.as_time(now), cycle_id=cycle_id, limit=shared_limit(settings)
    )
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
        report = plain.run_tick(
            settings,
            engine,
            now,
            advance=lambda cycle_id: advance(cycle_id, now),
            deliver=lambda: deliver(settings, engine, now, limit=shared_limit(settings)),
        )
        _publish(TICK_ARTIFACT, lambda: literal_markdown(report.lines()), "What the tick did")
        return report
    mailbox = plain.read_mailbox(engine, settings, now)
    report = TickReport(
        now=now, in_doubt=plain.find_in_doubt(engine, settings, now), mailbox=mailbox
    )
    report.signoff = plain.signoff_round(engine, settings, now)
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
    _publish(TICK_ARTIFACT, lambda: literal_markdown(report.lines()), "What the tick did")
    return report


def run_tick(now: datetime) -> TickReport:
    """One tick as Prefect flow runs (``samverkan worker``, the demo, a tick against a
    configured Prefect server)."""
    with quiet_prefect():
        return tick(now)


__all__ = [
    "ADVANCE_DEPLOYMENT",
    "DELIVER_DEPLOYMENT",
    "TICK_ARTIFACT",
    "TICK_DEPLOYMENT",
    "TickReport",
    "advance",
    "quiet_prefect",
    "run_tick",
    "send",
    "tick",
]
