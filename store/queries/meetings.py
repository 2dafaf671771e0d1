"""Meetings and the answers of those invited to them."""

from __future__ import annotations

from sqlmodel import Session, select

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
