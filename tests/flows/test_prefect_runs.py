"""What Prefect shows of a tick is what happened, read back through Prefect's client: runs
named after their cycle and stage, a failed stage as a Failed task run beside the stages that
went on, a database hiccup retried without running a stage twice, and the tick's and the
reflection's reports as artifacts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, func, select

from flows.cycles.overview import cycle_overview
from flows.people.answers import record_answers
from store.models import AuditEntry, Message, Stage
from tests.conftest import launch_learning_cycle, read_maildir
from tests.flows.test_stage_failure import START, WORKSHOP, templates_failing_for_lars

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

T = TypeVar("T")


def run_tick(now: Any) -> tuple[Any, UUID]:
    """The tick flow at ``now``: its report and its flow run's id."""
    from flows.orchestration.flows import tick

    state = tick(now, return_state=True)
    assert state.is_completed(), state
    return state.result(), state.state_details.flow_run_id


def recorded(read: Callable[[], T], complete: Callable[[T], bool]) -> T:
    """Task runs reach the server as events, a moment after they ran: read until what is
    looked for is there (or a minute has gone by, and the assertions that follow say what
    is missing)."""
    deadline = time.monotonic() + 60
    while True:
        got = read()
        if complete(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def subflows(parent: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
                )
            )
        )


def task_runs(flow_run: UUID, count: int) -> dict[str, Any]:
    """The task runs of ``flow_run`` by name, once ``count`` of them have finished."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    def read() -> dict[str, Any]:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run]))
            )
        return {r.name: r for r in runs}

    return recorded(
        read,
        lambda runs: (
            sum(r.state is not None and r.state.is_final() for r in runs.values()) >= count
        ),
    )


def artifact(key: str, flow_run: UUID) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        [found] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]),
            )
        )
    return found


@contextmanager
def database_fails(error: Exception, times: int = 1) -> Iterator[list[str]]:
    """The database refuses the first ``times`` writes of messages with ``error``, as a
    dropped connection or a lock held too long would; yields every such write tried."""
    tried: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGE"):
            tried.append(statement)
            if len(tried) <= times:
                raise error

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield tried
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def test_a_failed_stage_is_a_failed_task_run_and_the_rest_goes_on(
    network, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = templates_failing_for_lars(tmp_path)
    monkeypatch.setenv("SAMVERKAN_TEMPLATES_DIR", str(root))
    custom = settings.model_copy(update={"templates_dir": root})
    cycle_id = launch_learning_cycle(network, custom, START, WORKSHOP)

    report, tick_id = run_tick(START)
    lines = report.lines()
    assert f"  cycle {cycle_id}: invitation (email) -> done, 13 messages" in lines
    assert any("workshop (meeting) -> failed" in line for line in lines)

    # The cycle's advance run is named after it and completed: the failed stage was
    # recorded and the plan went on with the others.
    [advance] = subflows(tick_id)
    assert advance.name == f"advance-cycle-{cycle_id}"
    assert advance.state_type.value == "COMPLETED"
    runs = task_runs(advance.id, 2)
    assert set(runs) == {"email:invitation", "meeting:workshop"}
    assert runs["email:invitation"].state_type.value == "COMPLETED"
    failed = runs["meeting:workshop"]
    assert failed.state_type.value == "FAILED"
    assert "workshop.sv.md.j2" in failed.state.message and "by zero" in failed.state.message
    stages = {s["key"]: s for s in cycle_overview(network, cycle_id=cycle_id)["stages"]}
    assert failed.state.message == stages["workshop"]["note"]  # what cycle show says

    # The tick's report, as the terminal shows it.
    from flows.orchestration.flows import TICK_ARTIFACT

    published = artifact(TICK_ARTIFACT, tick_id)
    assert published.type == "markdown"
    assert "\n".join(lines) in published.data
    assert len(read_maildir(Path(settings.mail_dir))) == 13


def test_deliver_runs_are_named_after_what_they_deliver(network, settings) -> None:
    from prefect.client.orchestration import get_client

    from flows.orchestration.flows import send

    for cycle_id, name in ((None, "deliver-all"), (7, "deliver-cycle-7")):
        state = send(cycle_id, return_state=True)
        assert state.is_completed()
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(state.state_details.flow_run_id)
        assert run.name == name


def messages_and_runs(engine: Any) -> dict[str, tuple[int, int]]:
    """For each stage key: how many messages it queued, and how many times it ran."""
    with Session(engine) as s:
        messages = dict(
            s.exec(
                select(Stage.key, func.count())
                .join(Message, col(Message.stage_id) == Stage.id)
                .group_by(Stage.key)
            ).all()
        )
        ran = dict(
            s.exec(
                select(AuditEntry.stage_key, func.count())
                .where(col(AuditEntry.action) == "stage.done")
                .group_by(AuditEntry.stage_key)
            ).all()
        )
    return {key: (messages.get(key, 0), ran.get(key, 0)) for key in {*messages, *ran}}


def test_a_database_hiccup_is_retried_and_the_stage_runs_once(network, settings) -> None:
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP)
    hiccup = OperationalError("INSERT INTO message", {}, Exception("database is locked"))
    with database_fails(hiccup) as tried:
        report, tick_id = run_tick(START)  # the invitation, then the workshop's invite
    assert tried  # the invitation's first write failed
    assert [(s.key, s.status, s.messages) for _, s in report.stages] == [
        ("invitation", "done", 13),
        ("workshop", "done", 13),
    ]
    assert messages_and_runs(network) == {"invitation": (13, 1), "workshop": (13, 1)}
    mail = read_maildir(Path(settings.mail_dir))
    assert len(mail) == 13 and all(len(m) == 2 for m in mail.values())
    [advance] = subflows(tick_id)
    runs = task_runs(advance.id, 2)
    assert {name: (r.state_type.value, r.run_count) for name, r in runs.items()} == {
        "email:invitation": ("COMPLETED", 2),  # failed once, retried
        "meeting:workshop": ("COMPLETED", 1),
    }
    assert cycle_overview(network, cycle_id=cycle_id)["status"] == "running"


def test_an_error_that_is_not_the_databases_is_not_retried(network, settings) -> None:
    from flows.orchestration.flows import tick

    launch_learning_cycle(network, settings, START, WORKSHOP)
    with database_fails(RuntimeError("a bug"), times=10) as tried, pytest.raises(RuntimeError):
        tick(START)
    assert len(tried) == 1
    assert messages_and_runs(network) == {}  # nothing was written


def test_the_reflection_report_is_published_without_what_the_small_group_rule_hides(
    network, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.orchestration.flows as orchestration
    from flows.cycles.delivery import deliver
    from flows.orchestration.flows import reflection_artifact_key
    from flows.reporting.report import build_report
    from messaging.outbox import DrainReport

    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP)
    run_tick(WORKSHOP + timedelta(days=7))  # everything up to the follow-up questions
    for i, email in enumerate(
        ["anna.lindqvist@forsakringskassan.example", "per.holm@vgregion.example"]
    ):
        record_answers(
            network,
            settings,
            cycle_id=cycle_id,
            key="followup",
            email=email,
            answers={"scale-now": 5 + 2 * i, "what-is-better": "Vi pratar oftare."},
        )
    # Nothing is delivered in this tick, so that the report as the stage made it (how many
    # each stage has sent so far) can be made again below.
    with monkeypatch.context() as held:
        held.setattr(orchestration, "deliver", lambda *args, **kwargs: DrainReport())
        report, tick_id = run_tick(WORKSHOP + timedelta(days=14))
    assert ("reflection", "done") in [(s.key, s.status) for _, s in report.stages]

    [advance] = subflows(tick_id)
    published = artifact(reflection_artifact_key(cycle_id), advance.id).data
    # The stored report's own text and rule: the same as `samverkan report --format md`
    # but for the participants' words, which erasing a person could not reach there.
    assert published == build_report(network, settings, cycle_id, "md", words=False)
    whole = build_report(network, settings, cycle_id, "md")
    assert "Vi pratar oftare." in whole and "Vi pratar oftare." not in published
    # Two answers, fewer than the smallest group shown: their mean and median are not, nor
    # any group's figures (each holds fewer than three people, or would give one away).
    assert "| Alla | 13 | 2 | 15 % | visas inte | visas inte | – |" in published  # Swedish: 15 %
    assert "6.0" not in published and "| 6 |" not in published
    deliver(settings, network, WORKSHOP + timedelta(days=14))
    [emailed] = [
        p
        for p in read_maildir(Path(settings.mail_dir))["coordinator@coordination.example"][
            -1
        ].iter_attachments()
        if p.get_filename() == f"reflection-{cycle_id}.html"
    ]
    assert "Vi pratar oftare." in emailed.get_content()  # the emailed report keeps them
