"""Meetings and the answers of those invited to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from store.models import Meeting, MeetingAttendee


def meeting_of(session: Session, *, stage_id: int) -> Meeting | None:
    return session.exec(select(Meeting).where(Meeting.stage_id == stage_id)).first()


def partstats(session: Session, *, meeting_id: int) -> dict[int, str]:
    rows = session.exec(
        select(MeetingAttendee.participant_id, MeetingAttendee.partstat).where(
            MeetingAttendee.meeting_id == meeting_id
        )
    ).all()
    return {pid: str(stat) for pid, stat in rows}


def invited_among(session: Session, *, meeting_id: int, participant_ids: Sequence[int]) -> set[int]:
    """Which of ``participant_ids`` are already invited to the meeting."""
    return set(
        session.exec(
            select(MeetingAttendee.participant_id).where(
                MeetingAttendee.meeting_id == meeting_id,
                col(MeetingAttendee.participant_id).in_(participant_ids),
            )
        ).all()
    )


def insert_attendees(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Record many invitations to meetings in one statement (``rows`` hold every column)."""
    session.execute(insert(MeetingAttendee.__table__), rows)  # type: ignore[attr-defined]


def meeting_by_uid(session: Session, *, uid: str) -> Meeting | None:
    """The meeting whose calendar UID is ``uid``."""
    return session.exec(select(Meeting).where(Meeting.uid == uid)).first()
