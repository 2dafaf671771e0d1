"""The coordinator's mailbox: what was read from it, where reading an IMAP folder got to, and
the outgoing message an incoming one answers (flows/people/mailbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, update
from sqlmodel import Session, col, select

from store.models import (
    CycleMember,
    ImapCursor,
    InboxMessage,
    Message,
    MessageStatus,
    Participant,
    Stage,
)


def sent_message(session: Session, *, message_id: str) -> Message | None:
    """The message samverkan sent with this Message-ID (angle brackets or not), if any."""
    bare = message_id.strip().strip("<>").strip()
    if not bare:
        return None
    return session.exec(
        select(Message).where(col(Message.message_id).in_([f"<{bare}>", bare]))
    ).first()


def inbox_message_seen(session: Session, *, digest: str) -> bool:
    """Whether a message with these bytes was handled before."""
    found = session.exec(select(InboxMessage.id).where(InboxMessage.digest == digest)).first()
    return found is not None


def record_inbox_message(session: Session, *, row: InboxMessage) -> None:
    session.add(row)
    session.flush()


def mark_message_bounced(session: Session, *, message_row_id: int, reason: str) -> bool:
    """A sent message that a delivery status notification says never arrived; False if it was
    not marked sent (a second notification, or one for a message never handed over)."""
    done = session.execute(
        update(Message)
        .where(col(Message.id) == message_row_id, col(Message.status) == MessageStatus.sent.value)
        .values(status=MessageStatus.bounced.value, last_error=reason)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def imap_cursor(session: Session, *, mailbox: str) -> ImapCursor | None:
    return session.get(ImapCursor, mailbox)


def move_imap_cursor(
    session: Session, *, mailbox: str, uidvalidity: int, last_uid: int, at: datetime
) -> None:
    """Record that every UID up to ``last_uid`` of ``mailbox`` under ``uidvalidity`` was read."""
    cursor = session.get(ImapCursor, mailbox)
    if cursor is None:
        session.add(
            ImapCursor(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=at)
        )
    else:
        if cursor.uidvalidity == uidvalidity:  # never backwards (two readers at once)
            last_uid = max(cursor.last_uid, last_uid)
        cursor.uidvalidity, cursor.last_uid, cursor.updated_at = uidvalidity, last_uid, at
        session.add(cursor)
    session.flush()


def unflagged_uids(session: Session, *, mailbox: str, uidvalidity: int) -> list[int]:
    """UIDs handled in ``mailbox`` but not yet flagged on the server (a run stopped between
    the two)."""
    rows = session.exec(
        select(InboxMessage.uid).where(
            InboxMessage.source == mailbox,
            InboxMessage.uidvalidity == uidvalidity,
            col(InboxMessage.flagged).is_(False),
            col(InboxMessage.uid).is_not(None),
        )
    ).all()
    return sorted(int(u) for u in rows if u is not None)


def mark_flagged(session: Session, *, mailbox: str, uidvalidity: int, uids: list[int]) -> None:
    if uids:
        session.execute(
            update(InboxMessage)
            .where(
                col(InboxMessage.source) == mailbox,
                col(InboxMessage.uidvalidity) == uidvalidity,
                col(InboxMessage.uid).in_(uids),
            )
            .values(flagged=True)
        )


def bounced_members(session: Session, *, cycle_id: int) -> list[tuple[str, str]]:
    """(address, reason) of the cycle's members whose address bounced, by id."""
    rows = session.exec(
        select(Participant.email, Participant.bounce_reason)
        .join(CycleMember, col(CycleMember.participant_id) == Participant.id)
        .where(
            CycleMember.cycle_id == cycle_id,
            col(Participant.bounced_at).is_not(None),
            col(Participant.erased).is_(False),
        )
        .order_by(col(Participant.id))
    ).all()
    return [(e, r or "") for e, r in rows]


def every_inbox_message(session: Session) -> list[InboxMessage]:
    """Every message read from the mailbox (erasure reads them all: a file's name or a
    diagnostic may hold an address)."""
    return list(session.exec(select(InboxMessage).order_by(col(InboxMessage.id))).all())


def inbox_messages_about(session: Session, *, participant_id: int) -> list[InboxMessage]:
    return list(
        session.exec(
            select(InboxMessage)
            .where(InboxMessage.participant_id == participant_id)
            .order_by(col(InboxMessage.id))
        ).all()
    )


def latest_sent_to(session: Session, *, to_key: str) -> Message | None:
    """The last message samverkan sent to this address (a delivery report that names no
    message is tied to its recipient only if samverkan wrote to them)."""
    return session.exec(
        select(Message)
        .where(
            Message.to_key == to_key.strip().lower(),
            col(Message.status).in_([MessageStatus.sent.value, MessageStatus.bounced.value]),
        )
        .order_by(col(Message.id).desc())
    ).first()


def delay_counted(session: Session, *, message_row_id: int) -> bool:
    """Whether a temporary failure of this message was counted already."""
    found = session.exec(
        select(InboxMessage.id).where(
            InboxMessage.message_id == message_row_id, InboxMessage.kind == "delay"
        )
    ).first()
    return found is not None


def not_reached(session: Session, *, cycle_id: int) -> int:
    """The cycle's members whose address bounced and who were never asked its follow-up
    questions (no follow-up reached them): the ones the indicators do not count as asked.
    Those who unsubscribed or were erased are left out of mail for other reasons."""
    asked = exists().where(
        col(Message.participant_id) == col(Participant.id),
        col(Message.cycle_id) == cycle_id,
        col(Message.status) == MessageStatus.sent.value,
        col(Message.stage_id) == col(Stage.id),
        col(Stage.kind) == "followup",
    )
    count = session.exec(
        select(func.count())
        .select_from(CycleMember)
        .join(Participant, col(CycleMember.participant_id) == Participant.id)
        .where(
            CycleMember.cycle_id == cycle_id,
            col(Participant.bounced_at).is_not(None),
            col(Participant.erased).is_(False),
            col(Participant.consent).is_(True),
            ~asked,
        )
    ).one()
    return int(count)
