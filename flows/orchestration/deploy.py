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
    limits: list[str]  # one line for each global concurrency limit set or removed


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

    from flows.orchestration import limits
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
        # In a synchronous caller these are RunnerDeployments, not coroutines.
        deployments: list[Any] = [
            tick.to_deployment(
                name=TICK,
                interval=interval,
                parameters={"fan_out": True, "senders": senders},
                entrypoint_type=module,
                description="Runs what is due in every running cycle, on the work pool.",
            ),
            advance.to_deployment(
                name=ADVANCE,
                parameters={"senders": senders},
                entrypoint_type=module,
                description="Drafts one cycle's due stages into the outbox.",
            ),
            send.to_deployment(
                name=DELIVER,
                entrypoint_type=module,
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


def run_pool_worker(pool: str, limit: int | None) -> int:
    """A Prefect process worker on ``pool``, until it is stopped; its exit status."""
    check_server(api_url())
    try:
        return subprocess.call(worker_command(pool, limit))
    except KeyboardInterrupt:
        return 130  # Ctrl-C: the worker got it too and stopped


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
