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
import threading
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
        module = EntrypointType.MODULE_PATH
        # A run's console output is discarded (its Prefect logs reach the server as before):
        # through a pipe to its worker, a run that writes enough would wait forever on a
        # worker paused while it stops (run_pool_worker). Its heartbeat, for the zombie
        # automations, is set here, whoever started the worker.
        run_with = {
            "stream_output": False,
            "env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(zombies.HEARTBEAT_SECONDS)},
        }
        # In a synchronous caller these are RunnerDeployments, not coroutines.
        deployments: list[Any] = [
            tick.to_deployment(
                name=TICK,
                interval=interval,
                parameters={"fan_out": True, "senders": senders},
                entrypoint_type=module,
                job_variables=run_with,
                description="Runs what is due in every running cycle, on the work pool.",
            ),
            advance.to_deployment(
                name=ADVANCE,
                parameters={"senders": senders},
                entrypoint_type=module,
                job_variables=run_with,
                description="Drafts one cycle's due stages into the outbox.",
            ),
            send.to_deployment(
                name=DELIVER,
                entrypoint_type=module,
                job_variables=run_with,
                description="Delivers the outbox; several runs share it without doubles.",
            ),
        ]
        ids = [str(deployment.apply(work_pool_name=pool)) for deployment in deployments]
        with get_client(sync_client=True) as client:
            limit_lines += zombies.ensure(client, ids)
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


def _worker_child(parent: int) -> Callable[[], None]:
    """What the Prefect worker does before it starts (between fork and exec): SIGINT back to
    its default (a shell's ``&`` hands it down ignored, and Prefect's worker stops on
    SIGINT), and, on Linux, SIGKILL to it when samverkan's process dies, even by SIGKILL, so
    that it is never left running alone, taking runs. SIGKILL, not SIGTERM: told to stop,
    Prefect's worker ends the runs it started, while killed it leaves them (each in a session
    of its own) to finish."""

    def prepare() -> None:  # pragma: no cover - runs in the child
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if sys.platform.startswith("linux"):
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # samverkan died before the line above
                os._exit(1)

    return prepare


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
                with open(f"/proc/{entry}/stat") as stat_file:
                    stat = stat_file.read()
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


def _flow_runs_in(pids: set[int]) -> set[str]:
    """The ids of the flow runs these processes run: Prefect gives each run's process its id
    in the environment (PREFECT__FLOW_RUN_ID). The server's ``infrastructure_pid`` is a bare
    pid, which another machine's run may share, so it is not used to find them."""
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        for variable in variables:
            if variable.startswith(b"PREFECT__FLOW_RUN_ID="):
                found.add(variable.split(b"=", 1)[1].decode())
    return found


CRASH_WAIT = 15.0  # seconds a forced stop waits for the server to take the Crashed states


def _crash(run_ids: set[str], say: Callable[[str], None]) -> None:
    """Mark these flow runs Crashed, with the reason, where they are still open: a worker
    stopped at once must not leave them Running. Waits for the server at most
    ``CRASH_WAIT`` seconds (a forced stop is not held up by a server that is away; the zombie
    automation marks the runs later)."""
    if not run_ids:
        return
    from flows.orchestration.prefect_settings import server_configured

    if not server_configured():  # Prefect would start an embedded server of its own
        say("no Prefect server to mark the stopped runs on")
        return
    lines: list[str] = []
    thread = threading.Thread(target=_mark_crashed, args=(run_ids, lines), daemon=True)
    thread.start()
    thread.join(CRASH_WAIT)
    for line in list(lines):
        say(line)
    if thread.is_alive():
        say(
            f"could not mark the stopped runs Crashed within {CRASH_WAIT:g} s; "
            "the zombie automation will"
        )


def _mark_crashed(run_ids: set[str], lines: list[str]) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            for run_id in sorted(run_ids):
                run = client.read_flow_run(UUID(run_id))
                if run.state is None or run.state.is_final():
                    continue
                client.set_flow_run_state(
                    run.id,
                    Crashed(message="stopped by a second signal to samverkan worker"),
                    force=True,
                )
                lines.append(f"flow run {run.name} marked Crashed")
    except Exception as exc:  # the server away: the zombie automation marks them later
        lines.append(f"could not mark the stopped runs Crashed ({exc}); the zombie automation will")


def run_pool_worker(
    pool: str, limit: int | None, *, say: Callable[[str], None] = lambda line: None
) -> int:
    """A Prefect process worker on ``pool``, until it is stopped; its exit status.

    Stopping (SIGTERM or SIGINT to this process). Prefect's worker, told to stop, ends the
    runs it has in flight and leaves them Running on the server (measured: a deliver run
    half-way through stayed Running). So the first signal pauses the worker instead (SIGSTOP:
    it takes no more runs, while the runs it started go on in their own processes), waits
    until they have ended, and only then stops it; exit status 0. A second signal, at any
    point, ends everything at once and marks the runs it ended Crashed, with the reason; exit
    status 128 + the signal. Where the processes cannot be read (not Linux), the first signal
    is passed on to the worker as it is.
    """
    check_server(api_url())
    child = subprocess.Popen(
        worker_command(pool, limit), preexec_fn=_worker_child(os.getpid()), process_group=0
    )
    signals: list[int] = []

    def count(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)

    def signal_worker(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, count) for s in (signal.SIGINT, signal.SIGTERM)}
    can_wait = sys.platform.startswith("linux")
    state = "running"  # then "draining" (paused), "stopping" (told to stop), "killed"
    try:
        while child.poll() is None:
            if len(signals) >= 2 and state != "killed":
                state = "killed"
                processes = _below(child.pid)
                runs = _flow_runs_in(processes)
                n = len(runs)
                say(f"stopping now: {n} {'run' if n == 1 else 'runs'} in flight ended")
                signal_worker(signal.SIGKILL)  # first, so that it starts nothing more
                for pid in processes:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                child.wait()
                _crash(runs, say)
            elif signals and state == "running":
                if can_wait:
                    state = "draining"
                    signal_worker(signal.SIGSTOP)
                    runs = _flow_runs_in(_below(child.pid))
                    say(
                        f"stopping: no more runs are taken; waiting for the {len(runs)} in "
                        "flight to finish (signal again to end them now)"
                    )
                else:
                    state = "stopping"
                    say("stopping: the worker finishes what it can and stops")
                    signal_worker(signal.SIGTERM)
            elif state == "draining" and not _below(child.pid):
                state = "stopping"  # nothing in flight: the worker may stop now
                signal_worker(signal.SIGCONT)
                signal_worker(signal.SIGTERM)
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if state == "killed":
        return 128 + signals[-1]
    if state in ("draining", "stopping"):
        return 0  # stopped as asked, nothing left in flight
    code = child.returncode
    return 128 - code if code < 0 else code


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
