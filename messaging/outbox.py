"""The outbox: claim queued messages, hand them to a transport, record every outcome.

Guarantees (README, "Delivery: every message sent once, or reported"): a message is claimed in
the database (``sending``) before it reaches the transport and marked ``sent`` right after, so
that after a crash only messages that were in flight can be in doubt. Those are marked
``uncertain``, never resent silently. Temporary failures go to ``retry`` with exponential
backoff and jitter; permanent ones, or too many attempts, end in ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from messaging import links
from messaging.compose import Outgoing, to_bytes
from messaging.ratelimit import RateLimit, SendLimit
from messaging.transports.base import (
    Envelope,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    UncertainDelivery,
)
from store import queries
from store.models import Message, MessageStatus
from store.types import utcnow

_monotonic = time.monotonic  # how long a drain has run (a test's own clock replaces it)


@dataclass(frozen=True)
class SenderInfo:
    name: str
    email: str
    domain: str
    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    lease_seconds: float = 600.0
    link_key: bytes | None = None  # fills personal links in at send time
    base_url: str | None = None  # of the participants' pages, for the unsubscribe link
    language: str = "sv"  # of messages to no participant (the coordinator, the steering group)


@dataclass
class DrainReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0

    def __str__(self) -> str:
        parts = [f"{self.sent} sent"]
        for name in ("retry", "failed", "uncertain"):
            n = getattr(self, name)
            if n:
                parts.append(f"{n} {'to retry' if name == 'retry' else name}")
        return ", ".join(parts)


def message_id(message: Message | Claimed, domain: str) -> str:
    """The row's Message-ID: the one stored when it was first claimed, so that a retry or a
    deliberate resend carries the same one."""
    return message.message_id or new_message_id(message, domain)


def new_message_id(message: Message | Claimed, domain: str) -> str:
    """Unique across installations, not only within one: a random part beside the row's own
    numbers, since two installations can share a domain and always share row numbers."""
    row = f"{message.cycle_id}.{message.id}.{message.revision}"
    return f"<samverkan.{row}.{secrets.token_hex(8)}@{domain}>"


def _assign_message_ids(session: Session, won: list[int], domain: str) -> None:
    """Store a Message-ID for each claimed row that has none, before any is handed over."""
    fresh = queries.without_message_id(session, ids=won)
    if not fresh:
        return
    queries.store_message_ids(
        session, message_ids={row.id: new_message_id(row, domain) for row in fresh}
    )
    session.commit()


def mark_stale_uncertain(session: Session, *, now: datetime, lease_seconds: float) -> int:
    """Messages claimed longer before ``now`` than the lease and never marked sent: a crash
    hit them. Claims are stamped with the drain's ``now`` too, so one clock decides."""
    return queries.mark_claimed_before_uncertain(
        session,
        cutoff=now - timedelta(seconds=lease_seconds),
        why="the sender stopped while this message was in flight; it may or may not have arrived",
    )


class Claimed(Protocol):
    """A claimed outbox row, as read for sending (the columns of ``Message``)."""

    id: int
    cycle_id: int
    stage_id: int
    participant_id: int | None
    revision: int
    message_id: str | None
    to_email: str
    to_key: str
    to_name: str
    subject: str
    text: str
    html: str
    category: str
    ics: str | None
    ics_method: str | None
    attachment_name: str | None
    attachment: str | None
    attempts: int
    cycle_name: str  # read with the row, for List-Id
    language: str | None  # the participant's, for Content-Language


def claim_batch(
    session: Session,
    *,
    now: datetime,
    limit: int,
    cycle_id: int | None = None,
    domain: str | None = None,
) -> list[Claimed]:
    """Mark up to ``limit`` ready messages as ``sending`` and return them; with ``domain``,
    give each that has none its Message-ID."""
    while True:
        # Locked with SKIP LOCKED on PostgreSQL, so that several workers claim disjoint rows.
        ids = queries.ready_message_ids(session, now=now, limit=limit, cycle_id=cycle_id)
        if not ids:
            return []
        # Only rows still ready are claimed: RETURNING says which ones this drain won.
        won = queries.claim_messages(session, ids=ids, now=now)
        session.commit()
        if won:
            break
        # Another drain claimed every one of them first (SQLite, where both read the same
        # rows): look again rather than stop while messages are still waiting.
    if domain is not None:
        _assign_message_ids(session, won, domain)
    # In queue order: a person gets the invitation before the calendar invite behind it.
    # Plain rows, not ORM objects: read once, never changed (outcomes are bulk UPDATEs).
    return queries.claimed_messages(session, ids=won)


def message_bytes(msg: Message | Claimed, sender: SenderInfo, mid: str) -> bytes:
    """The message as the recipient gets it, with their personal links filled in."""
    text, html = msg.text, msg.html
    unsubscribe = None
    if msg.participant_id is not None:
        if sender.link_key is None:
            raise PermanentFailure("this message has personal links but no key to sign them")
        text = links.fill(text, sender.link_key, msg.participant_id)
        html = links.fill(html, sender.link_key, msg.participant_id)
        if sender.base_url:
            token = links.token_for(
                sender.link_key, "unsubscribe", msg.stage_id, msg.participant_id
            )
            unsubscribe = links.url(sender.base_url, "unsubscribe", token)
    try:
        return to_bytes(
            Outgoing(
                sender_name=sender.name,
                sender_email=sender.email,
                to_name=msg.to_name,
                to_email=msg.to_email,
                subject=msg.subject,
                text=text,
                html=html,
                message_id=mid,
                date=utcnow(),
                category=msg.category,
                ics=msg.ics,
                ics_method=msg.ics_method,
                attachment_name=msg.attachment_name,
                attachment=msg.attachment,
                language=str(getattr(msg, "language", None) or sender.language),
                cycle_id=msg.cycle_id,
                cycle_name=getattr(msg, "cycle_name", ""),
                unsubscribe_url=unsubscribe,
            )
        )
    except ValueError as exc:  # an address or a link that cannot be written
        raise PermanentFailure(str(exc)) from None


def backoff(attempt: int, base: float) -> timedelta:
    """Exponential backoff with full jitter between half and the whole step."""
    step = base * (2 ** max(attempt - 1, 0))
    return timedelta(seconds=step * random.uniform(0.5, 1.0))


async def _send_one(
    transport: Transport,
    msg: Claimed,
    sender: SenderInfo,
    now: datetime,
    report: DrainReport,
    outcomes: list[dict[str, object]],
) -> None:
    """Hand one claimed message over and note its outcome (written with its batch)."""
    mid = message_id(msg, sender.domain)
    attempts = msg.attempts + 1
    outcome: dict[str, object] = {"id": msg.id, "attempts": attempts}
    try:
        data = message_bytes(msg, sender, mid)
        receipt = await transport.send(Envelope(sender.email, msg.to_email, data, mid))
    except TemporaryFailure as exc:
        if attempts >= sender.max_attempts:
            outcome.update(
                status=MessageStatus.failed.value,
                last_error=f"gave up after {attempts} attempts: {exc}",
            )
            report.failed += 1
        else:
            outcome.update(
                status=MessageStatus.retry.value,
                last_error=str(exc),
                next_attempt_at=now + backoff(attempts, sender.retry_base_seconds),
            )
            report.retry += 1
    except PermanentFailure as exc:
        outcome.update(status=MessageStatus.failed.value, last_error=str(exc))
        report.failed += 1
    except UncertainDelivery as exc:
        outcome.update(status=MessageStatus.uncertain.value, last_error=str(exc), message_id=mid)
        report.uncertain += 1
    else:
        outcome.update(
            status=MessageStatus.sent.value,
            sent_at=utcnow(),
            message_id=mid,
            server_reply=receipt.reply,
            last_error=None,
        )
        report.sent += 1
    outcomes.append(outcome)


async def _worker(
    transport: Transport,
    waiting: deque[Claimed],
    sender: SenderInfo,
    now: datetime,
    limit: SendLimit,
    report: DrainReport,
    outcomes: list[dict[str, object]],
) -> None:
    """One connection: take the next waiting message until none is left."""
    while waiting:
        # The message leaves its lane only once it may go: if the limit cannot be asked (a
        # shared one whose server is gone), it is still in the lane and goes back to the
        # queue, not into doubt.
        await limit.wait()
        msg = waiting.popleft()
        await _send_one(transport, msg, sender, now, report, outcomes)


def _release(session: Session, unsent: list[Claimed]) -> None:
    """Claimed messages never handed over go back to the queue as they were: ready again,
    with no claim that a later drain could take for a crash."""
    if unsent:
        queries.release_claims(session, ids=[m.id for m in unsent])


def _record(session: Session, outcomes: list[dict[str, object]]) -> None:
    """Write a batch's outcomes: one UPDATE per kind of outcome, each for many rows."""
    by_shape: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for outcome in outcomes:
        by_shape.setdefault(tuple(sorted(outcome)), []).append(outcome)
    for rows in by_shape.values():
        queries.record_outcomes(session, rows=rows)


async def _drain(
    engine: Engine,
    sender: SenderInfo,
    connect: Callable[[], Transport],
    now: datetime,
    cycle_id: int | None,
    concurrency: int,
    batch: int | None,
    limit: SendLimit,
    progress: Callable[[DrainReport], None] | None,
) -> DrainReport:
    """Claim a batch, send it over every connection at once, record the batch; repeat.

    At most one batch is ever in flight: after a crash only its messages can be in doubt.
    The connections are granted by ``limit`` before anything is claimed, so no claim waits
    for one (a claim that waited past the lease would be taken for a crashed one).
    """
    report = DrainReport()
    started = _monotonic()

    def clock() -> datetime:
        # The drain's clock runs on from the time it was given: a batch claimed late in a
        # long drain is stamped then, or another drain would take its claim for a crashed one.
        return now + timedelta(seconds=_monotonic() - started)

    with Session(engine, expire_on_commit=False) as session:
        report.uncertain = mark_stale_uncertain(
            session, now=now, lease_seconds=sender.lease_seconds
        )
        session.commit()
        if not queries.any_ready_message(session, now=now, cycle_id=cycle_id):
            return report  # nothing to send: no connection asked for, none opened
        session.rollback()  # no transaction left open while waiting for connections
        async with limit.connections(max(1, concurrency)) as granted, AsyncExitStack() as stack:
            if granted < 1:
                return report  # other drains hold every connection and send what is ready
            transports = [connect() for _ in range(granted)]
            for transport in transports:
                await stack.enter_async_context(transport)
            # One message per connection at a time: after a crash at most as many messages
            # as there are connections can be in doubt, those actually in flight.
            size = batch or len(transports)
            while True:
                at = clock()
                claimed = claim_batch(
                    session, now=at, limit=size, cycle_id=cycle_id, domain=sender.domain
                )
                if not claimed:
                    break
                # One lane per connection; a recipient always rides the same lane, so their
                # messages arrive in queue order (the invitation before the invite).
                lanes: list[deque[Claimed]] = [deque() for _ in transports]
                for msg in claimed:
                    lanes[zlib.crc32(msg.to_key.encode()) % len(lanes)].append(msg)
                outcomes: list[dict[str, object]] = []
                try:
                    # Every lane runs to its end, even if another fails, so that what is
                    # recorded below is final.
                    failures = await asyncio.gather(
                        *(
                            _worker(t, lane, sender, at, limit, report, outcomes)
                            for t, lane in zip(transports, lanes, strict=True)
                            if lane
                        ),
                        return_exceptions=True,
                    )
                finally:
                    # What was handed over is recorded even if something failed meanwhile,
                    # and what never was goes back to the queue.
                    _record(session, outcomes)
                    _release(session, [m for lane in lanes for m in lane])
                    session.commit()  # the batch's outcomes, in one write
                for failure in failures:
                    if isinstance(failure, BaseException):
                        raise failure
                if progress:
                    progress(report)
    return report


def drain(
    engine: Engine,
    sender: SenderInfo,
    connect: Callable[[], Transport],
    *,
    now: datetime,
    cycle_id: int | None = None,
    concurrency: int = 1,
    batch: int | None = None,
    limit: SendLimit | None = None,
    progress: Callable[[DrainReport], None] | None = None,
) -> DrainReport:
    """Send every message that is ready at ``now``; return what happened.

    ``connect`` makes one transport; up to ``concurrency`` of them are used side by side
    (as many as ``limit`` grants), each reused for many messages. A batch is claimed, sent
    and recorded at a time: by default one message per connection, so that after a crash at
    most as many messages as there are connections can be in doubt (``uncertain``), the ones
    actually in flight. ``limit`` keeps the send rate and the number of connections; by
    default, within this drain alone (``RateLimit()``, no rate cap).
    """
    return asyncio.run(
        _drain(
            engine,
            sender,
            connect,
            now,
            cycle_id,
            concurrency,
            batch,
            limit or RateLimit(),
            progress,
        )
    )


def listing(
    engine: Engine,
    *,
    cycle_id: int,
    statuses: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, object]]:
    """The messages of a cycle (optionally of some statuses; ``limit`` of them from
    ``offset``), for the coordinator."""
    known = {s.value for s in MessageStatus}
    bad = [s for s in statuses or [] if s not in known]
    if bad:
        from store.errors import InvalidInput

        raise InvalidInput(f"unknown status {bad[0]!r} (use: {', '.join(sorted(known))})")
    with Session(engine) as session:
        rows = queries.cycle_messages(
            session, cycle_id=cycle_id, statuses=statuses, limit=limit, offset=offset
        )
        return [
            {
                "id": m.id,
                "stage": m.key,
                "to": m.to_email,
                "status": str(m.status),
                "attempts": m.attempts,
                "category": m.category,
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                "error": m.last_error,
                "reply": m.server_reply,
            }
            for m in rows
        ]


def status_counts(engine: Engine, *, cycle_id: int) -> dict[str, int]:
    """How many of the cycle's messages have each status."""
    with Session(engine) as session:
        return queries.cycle_status_counts(session, cycle_id=cycle_id)


def resend_uncertain(engine: Engine, *, cycle_id: int, reason: str | None = None) -> int:
    """Queue the cycle's uncertain messages again, on purpose: they may arrive twice."""
    with Session(engine) as session:
        count = queries.requeue_uncertain(session, cycle_id=cycle_id)
        queries.audit(
            session,
            cycle_id=cycle_id,
            action="outbox.resend",
            detail=f"{count} uncertain messages queued again",
            reason=reason,
        )
        session.commit()
        return count
