"""The outbox: claim queued messages, hand them to a transport, record every outcome.

Guarantees (DESIGN.md, "Delivery guarantees"): a message is claimed in the database
(``sending``) before it reaches the transport and marked ``sent`` right after, so that after a
crash only messages that were in flight can be in doubt. Those are marked ``uncertain``, never
resent silently. Temporary failures go to ``retry`` with exponential backoff and jitter;
permanent ones, or too many attempts, end in ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from messaging import links
from messaging.compose import Outgoing, to_bytes
from messaging.transports.base import (
    Envelope,
    PermanentFailure,
    TemporaryFailure,
    Transport,
)
from store.models import Message, MessageStatus
from store.types import utcnow

READY = (MessageStatus.queued.value, MessageStatus.retry.value)


@dataclass(frozen=True)
class SenderInfo:
    name: str
    email: str
    domain: str
    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    lease_seconds: float = 600.0
    link_key: bytes | None = None  # fills personal links in at send time


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


def message_id(message: Message, domain: str) -> str:
    """Deterministic per outbox row: a deliberate resend carries the same Message-ID."""
    return f"<samverkan.{message.cycle_id}.{message.id}.{message.revision}@{domain}>"


def mark_stale_uncertain(session: Session, *, lease_seconds: float) -> int:
    """Messages claimed longer ago than the lease and never marked sent: a crash hit them."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    result = session.exec(
        update(Message)
        .where(col(Message.status) == MessageStatus.sending.value, col(Message.claimed_at) < cutoff)
        .values(
            status=MessageStatus.uncertain.value,
            last_error="the sender stopped while this message was in flight; "
            "it may or may not have arrived",
        )
    )
    return int(result.rowcount or 0)


def claim_batch(
    session: Session, *, now: datetime, limit: int, cycle_id: int | None = None
) -> list[Message]:
    """Mark up to ``limit`` ready messages as ``sending`` and return them."""
    query = (
        select(Message.id)
        .where(
            col(Message.status).in_(READY),
            or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
        )
        .order_by(col(Message.id))
        .limit(limit)
    )
    if cycle_id is not None:
        query = query.where(Message.cycle_id == cycle_id)
    ids = list(session.exec(query).all())
    if not ids:
        return []
    claimed_at = utcnow()
    # The status condition makes the claim safe against a second drain racing for the same rows.
    session.exec(
        update(Message)
        .where(col(Message.id).in_(ids), col(Message.status).in_(READY))
        .values(status=MessageStatus.sending.value, claimed_at=claimed_at)
    )
    session.commit()
    return list(
        session.exec(
            select(Message).where(
                col(Message.id).in_(ids),
                Message.claimed_at == claimed_at,
                Message.status == MessageStatus.sending.value,
            )
        ).all()
    )


def message_bytes(msg: Message, sender: SenderInfo, mid: str) -> bytes:
    """The message as the recipient gets it, with their personal links filled in."""
    text, html = msg.text, msg.html
    if msg.participant_id is not None and links.wanted(text + html):
        if sender.link_key is None:
            raise PermanentFailure("this message has personal links but no key to sign them")
        text = links.fill(text, sender.link_key, msg.participant_id)
        html = links.fill(html, sender.link_key, msg.participant_id)
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
        )
    )


def backoff(attempt: int, base: float) -> timedelta:
    """Exponential backoff with full jitter between half and the whole step."""
    step = base * (2 ** max(attempt - 1, 0))
    return timedelta(seconds=step * random.uniform(0.5, 1.0))


async def _drain(
    engine: Engine,
    sender: SenderInfo,
    transport: Transport,
    now: datetime,
    cycle_id: int | None,
    batch: int,
    progress: Callable[[DrainReport], None] | None,
) -> DrainReport:
    report = DrainReport()
    with Session(engine, expire_on_commit=False) as session:
        report.uncertain = mark_stale_uncertain(session, lease_seconds=sender.lease_seconds)
        session.commit()
        async with transport:
            while True:
                claimed = claim_batch(session, now=now, limit=batch, cycle_id=cycle_id)
                if not claimed:
                    break
                for msg in claimed:
                    mid = message_id(msg, sender.domain)
                    msg.attempts += 1
                    try:
                        data = message_bytes(msg, sender, mid)
                        receipt = await transport.send(
                            Envelope(sender.email, msg.to_email, data, mid)
                        )
                    except TemporaryFailure as exc:
                        msg.last_error = str(exc)
                        if msg.attempts >= sender.max_attempts:
                            msg.status = MessageStatus.failed
                            msg.last_error = f"gave up after {msg.attempts} attempts: {exc}"
                            report.failed += 1
                        else:
                            msg.status = MessageStatus.retry
                            msg.next_attempt_at = now + backoff(
                                msg.attempts, sender.retry_base_seconds
                            )
                            report.retry += 1
                    except PermanentFailure as exc:
                        msg.status, msg.last_error = MessageStatus.failed, str(exc)
                        report.failed += 1
                    else:
                        msg.status, msg.sent_at = MessageStatus.sent, utcnow()
                        msg.message_id, msg.server_reply = mid, receipt.reply
                        msg.last_error = None
                        report.sent += 1
                    session.add(msg)
                    session.commit()  # the outcome is durable before the next message goes
                if progress:
                    progress(report)
    return report


def drain(
    engine: Engine,
    sender: SenderInfo,
    transport: Transport,
    *,
    now: datetime,
    cycle_id: int | None = None,
    batch: int = 200,
    progress: Callable[[DrainReport], None] | None = None,
) -> DrainReport:
    """Send every message that is ready at ``now``; return what happened."""
    return asyncio.run(_drain(engine, sender, transport, now, cycle_id, batch, progress))
