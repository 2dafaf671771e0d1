"""Distributed mode: samverkan's flows as Prefect deployments run by workers on a work pool.

``register`` (``samverkan deploy``) creates a process work pool if it is missing and three
deployments whose entrypoints are module paths (``flows.orchestration.flows.tick`` …), so a worker
needs samverkan installed, not a copy of some directory:

- ``tick/samverkan-tick`` on an interval schedule, with ``fan_out``: it starts one
  ``advance`` run per cycle that has a stage due, and ``deliver`` runs for mail waiting for
  a retry;
- ``advance/samverkan-advance``: drafts one cycle's due stages into the outbox, then starts
  ``senders`` ``deliver`` runs;
- ``deliver/samverkan-deliver``: drains the outbox. Runs on several workers claim disjoint
  messages (``FOR UPDATE SKIP LOCKED``), so none is sent twice, and share the SMTP caps
  through the global concurrency limits ``register`` creates as well
  (flows/orchestration/limits.py).

``run_embedded`` (``samverkan worker`` without a pool) ticks in one long-lived process
instead, paying Prefect's start-up once rather than on every tick.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from store.errors import ConfigError

if TYPE_CHECKING:
    from flows.settings import Settings

TICK, ADVANCE, DELIVER = "samverkan-tick", "samverkan-advance", "samverkan-deliver"


def api_url() -> str:
    """The Prefect server's API address, or a clear error when there is none."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:
        raise ConfigError(
            "this needs a Prefect server: set PREFECT_API_URL, e.g. "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (see the README, 'Keeping it running')"
        )
    return url


@dataclass(frozen=True)
class Registered:
    pool: str
    created_pool: bool
    deployments: list[str]
    interval: float
    limits: list[str]  # a line for each global limit set or removed, and the zombie automation


def register(
    *, pool: str, interval: float, senders: int, settings: Settings | None = None
) -> Registered:
    """Create the work pool if needed, register (or update) the three deployments, and set
    the SMTP caps shared by every deliver run from ``settings`` (default: the environment's)."""
    url = api_url()
    if interval < 5:
        raise ConfigError(f"--interval {interval:g}: ticks need at least 5 seconds between them")
    if not 1 <= senders <= 32:
        raise ConfigError(f"--senders {senders}: use 1 to 32 deliver runs per stage")
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    from flows.orchestration import limits, zombies
    from flows.orchestration.flows import advance, send, tick
    from flows.settings import load_settings

    settings = settings or load_settings()
    created = False
    try:
        with get_client(sync_client=True) as client:
            try:
                found = client.read_work_pool(pool)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
                created = True
            else:
                if found.type != "process":
                    raise ConfigError(
                        f"work pool {pool!r} is of type {found.type!r}; samverkan's workers "
                        "run flows as local processes: use a 'process' pool"
                    )
            limit_lines = limits.ensure(client, settings)
            limit_lines.append(zombies.ensure(client))
        module = EntrypointType.MODULE_PATH
        # A run's output goes to the Prefect server's logs (the UI shows them), not through a
        # pipe to its worker: a worker paused while it stops (run_pool_worker) would stop
        # reading the pipe, and a run that writes enough would wait on it forever.
        quiet = {"stream_output": False}
        # In a synchronous caller these are RunnerDeployments, not coroutines.
        deployments: list[Any] = [
            tick.to_deployment(
                name=TICK,
                interval=interval,
                parameters={"fan_out": True, "senders": senders},
                entrypoint_type=module,
                job_variables=quiet,
                description="Runs what is due in every running cycle, on the work pool.",
            ),
            advance.to_deployment(
                name=ADVANCE,
                parameters={"senders": senders},
                entrypoint_type=module,
                job_variables=quiet,
                description="Drafts one cycle's due stages into the outbox.",
            ),
            send.to_deployment(
                name=DELIVER,
                entrypoint_type=module,
                job_variables=quiet,
                description="Delivers the outbox; several runs share it without doubles.",
            ),
        ]
        for deployment in deployments:
            deployment.apply(work_pool_name=pool)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the Prefect server at {url}: {exc}") from None
    names = [f"{d.flow_name}/{d.name}" for d in deployments]
    return Registered(pool, created, names, interval, limit_lines)


def worker_command(pool: str, limit: int | None) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    command += ["--type", "process"]
    if limit:
        command += ["--limit", str(limit)]
    return command


def check_server(url: str) -> None:
    """A clear error now rather than a worker that retries a dead address in its logs."""
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the Prefect server at {url}: {exc}") from None


def preflight(settings: Settings) -> None:
    """What every run a worker takes needs, checked before it takes one: the store (reachable,
    its schema current), the key of personal links, and the mail server (it answers and takes
    the login). A worker that is set up wrongly says so in one line instead of reporting
    itself ready and failing every run; raises ConfigError.
    """
    import asyncio

    from messaging.transports.base import PermanentFailure, TemporaryFailure
    from messaging.transports.smtp import SMTPTransport
    from store.db import open_store

    open_store(settings.database_url)
    settings.link_key()
    if settings.smtp_url:
        smtp = SMTPTransport.from_url(settings.smtp_url, timeout=min(settings.smtp_timeout, 10))
        try:
            asyncio.run(smtp.check())
        except (TemporaryFailure, PermanentFailure) as exc:
            raise ConfigError(f"SAMVERKAN_SMTP_URL: {exc}") from None


def _worker_child() -> None:  # pragma: no cover - runs in the child between fork and exec
    """In the Prefect worker, before it starts: SIGINT back to its default (``nohup`` or a
    shell's ``&`` hand it down ignored, and Prefect's worker stops on SIGINT), and, on Linux,
    SIGTERM to it when samverkan's process dies, even by SIGKILL, so it is never left running
    alone, taking runs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _below(pid: int) -> set[int]:
    """The live processes below ``pid`` (read from /proc, Linux); empty elsewhere."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115 - one read
            except OSError:
                continue
            state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
            if state != "Z":
                children.setdefault(int(parent), []).append(int(entry))
    found: set[int] = set()
    todo = list(children.get(pid, []))
    while todo:
        here = todo.pop()
        if here not in found:
            found.add(here)
            todo.extend(children.get(here, []))
    return found


def _crash_runs_of(pids: set[int], say: Callable[[str], None]) -> None:
    """Mark Crashed, with the reason, the flow runs that ran in ``pids`` and are still open on
    the server: a worker stopped at once must not leave them Running."""
    import socket

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = socket.gethostname()
    ours = {f"{host}:{pid}" for pid in pids} | {str(pid) for pid in pids}
    open_states = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=open_states)),
                limit=200,
            )
            for run in runs:
                if str(run.infrastructure_pid) in ours:
                    client.set_flow_run_state(
                        run.id,
                        Crashed(message="stopped by a second signal to samverkan worker"),
                        force=True,
                    )
                    say(f"flow run {run.name} marked Crashed")
    except Exception as exc:  # the server away: the zombie automation marks them later
        say(f"could not mark the stopped runs Crashed ({exc}); the zombie automation will")


def run_pool_worker(
    pool: str, limit: int | None, *, say: Callable[[str], None] = lambda line: None
) -> int:
    """A Prefect process worker on ``pool``, until it is stopped; its exit status.

    The worker's flow runs send a heartbeat every ``zombies.HEARTBEAT_SECONDS``, so the
    automation of ``samverkan deploy`` can mark them Crashed if this machine dies.

    Stopping (SIGTERM or SIGINT to this process). Prefect's worker, told to stop, ends the
    runs it has in flight and leaves them Running on the server (measured: a deliver run
    half-way through stayed Running). So the first signal pauses the worker instead (SIGSTOP:
    it takes no more runs, while the runs it started go on in their own processes), waits
    until they have ended, and only then stops it. A second signal stops everything at once
    and marks the runs it stopped Crashed, with the reason. Where the processes cannot be
    read (not Linux), the first signal is passed on to the worker as it is.
    """
    from flows.orchestration import zombies

    check_server(api_url())
    env = {**os.environ, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(zombies.HEARTBEAT_SECONDS)}
    child = subprocess.Popen(
        worker_command(pool, limit), env=env, preexec_fn=_worker_child, process_group=0
    )
    told = 0

    def count(signum: int, frame: FrameType | None) -> None:
        nonlocal told
        told += 1

    def signal_worker(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, count) for s in (signal.SIGINT, signal.SIGTERM)}
    acted = 0  # how many of the signals have been acted on
    can_wait = sys.platform.startswith("linux")
    try:
        while child.poll() is None:
            if told > acted and acted == 0:
                acted = 1
                if can_wait:
                    signal_worker(signal.SIGSTOP)
                    runs = len(_below(child.pid))
                    say(
                        "stopping: no more runs are taken; waiting for the "
                        f"{runs} in flight to finish (signal again to stop them now)"
                    )
                else:
                    say("stopping: the worker finishes what it can and stops")
                    signal_worker(signal.SIGTERM)
            elif acted == 1 and told == 1 and can_wait and not _below(child.pid):
                signal_worker(signal.SIGCONT)
                signal_worker(signal.SIGTERM)
                acted = 1_000  # the worker stops now, with nothing in flight
            elif told >= 2 and acted < 2:
                acted = 2
                stopped = _below(child.pid)
                say(f"stopping now: {len(stopped)} processes of runs in flight are ended")
                for pid in stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                signal_worker(signal.SIGCONT)
                signal_worker(signal.SIGKILL)
                child.wait()
                _crash_runs_of(stopped, say)
            time.sleep(0.2)
        return child.returncode if acted < 2 else 143
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_embedded(
    *,
    every: float,
    say: Callable[[str], None],
    tick: Callable[[datetime], list[str]],
    rounds: int | None = None,
) -> int:
    """Tick every ``every`` seconds in this process until SIGINT/SIGTERM (or ``rounds``).

    A tick in progress is finished before stopping; a tick that fails (the database away for
    a moment, say) is reported in one line and the next one runs on time. Returns the number
    of ticks run.
    """
    stop = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True
        say("stopping after this tick")

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    done = 0
    try:
        while not stop and (rounds is None or done < rounds):
            started = time.monotonic()
            try:
                for line in tick(datetime.now(UTC)):
                    say(line)
            except Exception as exc:  # a long-running worker outlives one bad tick
                say(f"tick failed: {type(exc).__name__}: {exc}; trying again in {every:g} s")
            done += 1
            while not stop and (rounds is None or done < rounds):
                left = every - (time.monotonic() - started)
                if left <= 0:
                    break
                time.sleep(min(left, 0.5))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return done
