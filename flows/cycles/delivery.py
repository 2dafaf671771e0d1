"""Delivering the outbox with the configured transport, connections and rate limit.

Kept apart from the Prefect flows so that a worker can drain without starting Prefect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flows.settings import Settings
from messaging.outbox import DrainReport, SenderInfo, drain
from messaging.ratelimit import RateLimit, SendLimit
from messaging.transports import make_transport
from store.errors import ConfigError


def sender_info(settings: Settings) -> SenderInfo:
    return SenderInfo(
        name=settings.sender_name,
        email=settings.sender,
        domain=settings.mail_domain,
        max_attempts=settings.max_attempts,
        retry_base_seconds=settings.retry_base_seconds,
        lease_seconds=settings.sending_lease_seconds,
        link_key=_link_key(settings),
        base_url=settings.base,
        language=settings.coordinator_language,
    )


def deliver(
    settings: Settings,
    engine: Any,
    now: datetime,
    *,
    cycle_id: int | None = None,
    limit: SendLimit | None = None,
) -> DrainReport:
    """Drain the outbox with the configured transport, connections and rate limit.

    ``limit``: the caps shared with other drains (under Prefect, flows/orchestration/limits.py);
    by default this drain keeps the settings' caps on its own.
    """

    def connect() -> Any:
        return make_transport(
            smtp_url=settings.smtp_url, mail_dir=settings.mail_dir, timeout=settings.smtp_timeout
        )

    return drain(
        engine,
        sender_info(settings),
        connect,
        now=now,
        cycle_id=cycle_id,
        concurrency=settings.smtp_concurrency if settings.smtp_url else 1,
        limit=limit or local_limit(settings),
    )


def local_limit(settings: Settings) -> RateLimit:
    """The settings' rate caps, kept within one drain."""
    return RateLimit(settings.smtp_rate, settings.smtp_rate_per_minute)


def _link_key(settings: Settings) -> bytes | None:
    try:
        return settings.link_key()
    except ConfigError:
        return None  # messages with links could not have been drafted without it
