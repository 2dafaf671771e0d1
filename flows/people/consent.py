"""Withdrawn consent: a participant who unsubscribes gets no further mail.

Unsubscribing sets ``Participant.consent`` to false, which every stage already honours (it
writes only to members who consent), and drops the messages to them still waiting in the
outbox, as erasure does. It is recorded in the audit log by participant number, never by
address, and doing it twice changes nothing more.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col

from store import queries
from store.models import Message, MessageStatus, Participant
from store.types import utcnow

WAITING = [MessageStatus.draft.value, MessageStatus.queued.value, MessageStatus.retry.value]


def withdraw_consent(
    session: Session, *, participant_id: int, cycle_id: int, stage_key: str, how: str
) -> int | None:
    """Record that the participant wants no more mail; return how many waiting messages to
    them were dropped, or None if they had already unsubscribed."""
    # Conditional, so that two requests at once (a mail provider's one-click POST and the
    # person's own click) record it once.
    changed = session.exec(
        update(Participant)
        .where(col(Participant.id) == participant_id, col(Participant.consent).is_(True))
        .values(consent=False, updated_at=utcnow())
    ).rowcount
    if not changed:
        return None
    dropped = int(
        session.exec(
            update(Message)
            .where(col(Message.participant_id) == participant_id, col(Message.status).in_(WAITING))
            .values(
                status=MessageStatus.dropped.value,
                last_error="not sent: the participant unsubscribed",
            )
        ).rowcount
        or 0
    )
    queries.audit(
        session,
        cycle_id=cycle_id,
        action="participant.unsubscribe",
        stage_key=stage_key,
        detail=f"participant {participant_id}: unsubscribed ({how}); "
        f"{dropped} unsent messages dropped",
        actor="participant",
    )
    return dropped
