"""Withdrawn consent: a participant who unsubscribes gets no further mail.

Unsubscribing sets ``Participant.consent`` to false, which every stage already honours (it
writes only to members who consent), and drops the messages to them still waiting in the
outbox, as erasure does. It is recorded in the audit log by participant number, never by
address, and doing it twice changes nothing more.
"""

from __future__ import annotations

from sqlmodel import Session

from store import queries
from store.models import MessageStatus
from store.types import utcnow

WAITING = [MessageStatus.draft.value, MessageStatus.queued.value, MessageStatus.retry.value]


def withdraw_consent(
    session: Session, *, participant_id: int, cycle_id: int, stage_key: str, how: str
) -> int | None:
    """Record that the participant wants no more mail; return how many waiting messages to
    them were dropped, or None if they had already unsubscribed."""
    # Conditional, so that two requests at once (a mail provider's one-click POST and the
    # person's own click) record it once.
    if not queries.clear_consent(session, participant_id=participant_id, at=utcnow()):
        return None
    dropped = queries.drop_waiting_messages_of(
        session,
        participant_id=participant_id,
        statuses=WAITING,
        why="not sent: the participant unsubscribed",
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
