"""The SMTP caps held across every deliver run at once: Prefect's global concurrency limits.

Without them each deliver run keeps ``SAMVERKAN_SMTP_RATE``, ``SAMVERKAN_SMTP_RATE_PER_MINUTE``
and ``SAMVERKAN_SMTP_CONCURRENCY`` on its own, and a relay sees their sum. ``samverkan
deploy`` creates one limit per cap on the Prefect server (``ensure``):

- ``samverkan-smtp-connections``: as many slots as SAMVERKAN_SMTP_CONCURRENCY; a deliver run
  holds one for each SMTP connection it has open.
- ``samverkan-smtp-rate`` and ``samverkan-smtp-rate-per-minute``: rate limits of one slot that
  decays at the rate (per second, or per minute divided by 60). A slot frees 1/rate seconds
  after it was taken, so any two messages, whichever runs send them, go at least that far
  apart, and no window of a second (or a minute) holds more than the rate. A bigger bucket
  would let a burst of its size go at once and then the rate on top of it.

``shared_limit`` is the drain's limit (messaging/ratelimit.py ``SendLimit``) under a Prefect
server. A cap whose limit is not on the server (``samverkan deploy`` not run since it was set)
is kept by this run alone, as without a server, and the log says so once per process.

A run waits up to half a minute for a first connection; if the other runs hold them all
still, it leaves the outbox to them (they send what is ready, and what becomes ready while
they run) and ends having sent nothing, rather than wait behind a long drain while every tick
starts more runs that would wait too. A run that is killed holds its connection slots until
their lease runs out (two minutes; the server looks every 15 s); rate slots free themselves.
The lease is renewed every 90 s while the run lives, so a Prefect server may be away for
half a minute around a renewal before a live run loses its slots (a shorter lease would free a
dead run's slots sooner and lose a live run's in a shorter outage).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.orchestration.prefect_settings import server_configured
from messaging.ratelimit import RateLimit, SendLimit

if TYPE_CHECKING:
    from flows.settings import Settings

CONNECTIONS = "samverkan-smtp-connections"
RATE = "samverkan-smtp-rate"
PER_MINUTE = "samverkan-smtp-rate-per-minute"
LEASE_SECONDS = 120.0  # a killed run's connection slots free after this; renewed every 90 s
CONNECTION_WAIT = 30.0  # seconds a run waits for a first connection before leaving it to others

_said: set[str] = set()  # what this process has logged about missing limits


@dataclass(frozen=True)
class Limit:
    name: str
    slots: int
    decay: float  # slots freed per second; 0 for the connections
    told: str  # what it caps, for the output of samverkan deploy


def wanted(settings: Settings) -> list[Limit]:
    """The limits the settings ask for."""
    limits = [
        Limit(
            CONNECTIONS,
            settings.smtp_concurrency,
            0.0,
            f"{settings.smtp_concurrency} SMTP connections at once",
        )
    ]
    if settings.smtp_rate is not None:
        limits.append(
            Limit(RATE, 1, settings.smtp_rate, f"{settings.smtp_rate:g} messages a second")
        )
    if settings.smtp_rate_per_minute is not None:
        per_minute = settings.smtp_rate_per_minute
        limits.append(Limit(PER_MINUTE, 1, per_minute / 60, f"{per_minute} messages a minute"))
    return limits


def ensure(client: Any, settings: Settings) -> list[str]:
    """Create or update the limits on the Prefect server (``client``: a sync client), and
    remove a rate limit the settings no longer ask for. Returns one line for each."""
    from prefect.exceptions import ObjectNotFound

    lines = []
    limits = wanted(settings)
    for limit in limits:
        client.upsert_global_concurrency_limit_by_name(
            limit.name, limit.slots, slot_decay_per_second=limit.decay
        )
        lines.append(f"limit {limit.name}: {limit.told}, across all deliver runs")
    for name, setting in (
        (RATE, "SAMVERKAN_SMTP_RATE"),
        (PER_MINUTE, "SAMVERKAN_SMTP_RATE_PER_MINUTE"),
    ):
        if name in {limit.name for limit in limits}:
            continue
        try:
            client.delete_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            continue
        lines.append(f"limit {name} removed ({setting} is not set)")
    return lines


def _logger() -> Any:
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return logging.getLogger("samverkan")


def _say_once(key: str, line: str) -> None:
    if key not in _said:
        _said.add(key)
        _logger().warning(line)


class ServerLimit:
    """A ``SendLimit`` kept by the Prefect server for every deliver run together; the caps
    whose limit the server lacks are kept by ``local``, for this run alone."""

    def __init__(self, rates: list[str], connections: bool, local: RateLimit) -> None:
        self.rates, self.shared_connections, self.local = rates, connections, local

    @asynccontextmanager
    async def connections(self, wanted: int) -> AsyncIterator[int]:
        if not self.shared_connections:
            yield wanted
            return
        from prefect.concurrency.asyncio import AcquireConcurrencySlotTimeoutError, concurrency

        async with AsyncExitStack() as stack:
            # The first slot is waited for, a while; more are taken only if they are free, so
            # that no run holds some while it waits for others (two could wait on each other).
            try:
                await stack.enter_async_context(
                    concurrency(
                        CONNECTIONS,
                        occupy=1,
                        timeout_seconds=CONNECTION_WAIT,
                        strict=True,
                        lease_duration=LEASE_SECONDS,
                        raise_on_lease_renewal_failure=False,
                    )
                )
            except AcquireConcurrencySlotTimeoutError:
                # The runs holding them drain what is ready (and what becomes ready while they
                # do); waiting on would pile up a waiting run on every tick behind a long one.
                _logger().info(
                    "every SMTP connection (%s) is held by other deliver runs, which send "
                    "what is ready; this run sends nothing",
                    CONNECTIONS,
                )
                got = 0
            else:
                got = 1 + await self._more(stack, wanted - 1)
            yield got

    async def _more(self, stack: AsyncExitStack, wanted: int) -> int:
        """Take up to ``wanted`` more connection slots if they are free now; how many."""
        if wanted < 1:
            return 0
        import httpx
        from prefect.client.orchestration import get_client
        from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, concurrency

        async with get_client() as client:
            found = await client.read_global_concurrency_limit_by_name(CONNECTIONS)
        free = min(wanted, found.limit - found.active_slots)
        if free < 1:
            return 0
        try:
            await stack.enter_async_context(
                concurrency(
                    CONNECTIONS,
                    occupy=free,
                    strict=True,
                    max_retries=0,  # taken meanwhile: go on with what this run holds
                    lease_duration=LEASE_SECONDS,
                    raise_on_lease_renewal_failure=False,
                )
            )
        except ConcurrencySlotAcquisitionError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423:
                return 0
            raise
        return free

    async def wait(self) -> None:
        await self.local.wait()
        if self.rates:
            from prefect.concurrency.asyncio import rate_limit

            await rate_limit(self.rates, occupy=1, strict=True)


def shared_limit(settings: Settings) -> SendLimit | None:
    """The caps across every deliver run where a Prefect server is configured; None (each
    drain on its own) where there is none."""
    if not server_configured():
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    present = set()
    with get_client(sync_client=True) as client:
        for name in (CONNECTIONS, RATE, PER_MINUTE):
            try:
                found = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                continue
            if found.active:
                present.add(name)
    local = RateLimit(
        None if RATE in present else settings.smtp_rate,
        None if PER_MINUTE in present else settings.smtp_rate_per_minute,
    )
    rates = [name for name in (RATE, PER_MINUTE) if name in present]
    missing = [
        (name, setting)
        for name, setting, value in (
            (RATE, "SAMVERKAN_SMTP_RATE", settings.smtp_rate),
            (PER_MINUTE, "SAMVERKAN_SMTP_RATE_PER_MINUTE", settings.smtp_rate_per_minute),
            (CONNECTIONS, "SAMVERKAN_SMTP_CONCURRENCY", settings.smtp_url),
        )
        if value is not None and name not in present
    ]
    for name, setting in missing:
        _say_once(
            name,
            f"the Prefect server has no limit {name} (run samverkan deploy): "
            f"{setting} holds for each deliver run on its own, not for all together",
        )
    return ServerLimit(rates, CONNECTIONS in present and settings.smtp_url is not None, local)
