"""A meeting: one calendar invite (iMIP REQUEST) per participant, with a stable UID."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.email import recipients
from messaging.calendar import MeetingInfo, Person, build_invite
from messaging.render import render_extra
from store import queries
from store.models import Meeting, MeetingAttendee, pk

__all__ = ["CATEGORY", "attendees", "draft", "notice", "prepare", "recipients"]

CATEGORY = "meeting"


def _times(run: StageRun) -> tuple[datetime, datetime]:
    starts = datetime.fromisoformat(run.stage.config["starts_at"])
    return starts, starts + timedelta(minutes=int(run.stage.config["duration_minutes"]))


def prepare(run: StageRun, people: list[Recipient]) -> Meeting:
    """The meeting's calendar identity, created on first announcement, and its attendees."""
    meeting = queries.meeting_of(run.session, stage_id=run.stage.id)  # type: ignore[arg-type]
    starts, ends = _times(run)
    if meeting is None:
        meeting = Meeting(
            cycle_id=run.cycle.id,  # type: ignore[arg-type]
            stage_id=run.stage.id,  # type: ignore[arg-type]
            uid=f"{uuid.uuid4()}@{run.settings.mail_domain}",
            sequence=0,
            starts_at=starts,
            ends_at=ends,
            summary=run.cycle.name,
            location=run.stage.config.get("location", ""),
        )
        run.session.add(meeting)
        run.session.flush()
    known = queries.partstats(run.session, meeting_id=meeting.id)  # type: ignore[arg-type]
    for r in people:
        if r.participant_id is not None and r.participant_id not in known:
            run.session.add(MeetingAttendee(meeting_id=meeting.id, participant_id=r.participant_id))  # type: ignore[arg-type]
    run.memo["meeting"] = meeting
    return meeting


def _info(
    run: StageRun, recipient: Recipient, meeting: Meeting | None, *, template: str | None = None
) -> MeetingInfo:
    starts, ends = _times(run)
    context = run.context(recipient, meeting=run.meetings()[run.stage.key])
    name = template or run.stage.template or ""
    summary = (
        render_extra(run.template.emails, name, recipient.language, "summary", context)
        or run.cycle.name
    )
    return MeetingInfo(
        uid=meeting.uid if meeting else "validation@samverkan",
        sequence=meeting.sequence if meeting else 0,
        starts_at=starts,
        ends_at=ends,
        summary=summary,
        location=run.stage.config.get("location", ""),
        description=summary,
        tzid=run.cycle.timezone,
    )


def _meeting(run: StageRun) -> Meeting | None:
    """The stage's meeting row, read once per run (prepare() puts it there first)."""
    if "meeting" not in run.memo:
        run.memo["meeting"] = queries.meeting_of(run.session, stage_id=pk(run.stage))
    found: Meeting | None = run.memo["meeting"]
    return found


def draft(run: StageRun, recipient: Recipient) -> Draft:
    meeting = _meeting(run)
    email = run.render(recipient, meeting=run.meetings()[run.stage.key])
    ics = build_invite(
        _info(run, recipient, meeting),
        organizer=Person(run.settings.sender_name, run.settings.sender),
        attendee=Person(recipient.name, recipient.email),
        method="REQUEST",
    )
    return Draft(recipient=recipient, email=email, ics=ics, ics_method="REQUEST")


def attendees(run: StageRun, meeting: Meeting) -> list[Recipient]:
    """Everyone invited to the meeting who can still be written to."""
    invited = queries.partstats(run.session, meeting_id=pk(meeting))
    return [Recipient.of(p, o) for p, o in run.active_members if p.id in invited]


def notice(
    run: StageRun,
    meeting: Meeting,
    recipient: Recipient,
    *,
    method: str,
    template: str,
    change: dict[str, Any],
) -> Draft:
    """An update (REQUEST, same UID, higher SEQUENCE) or a cancellation (CANCEL)."""
    local = run.meetings()[run.stage.key]
    email = run.render(recipient, template=template, meeting=local, change=change)
    ics = build_invite(
        _info(run, recipient, meeting, template=template),
        organizer=Person(run.settings.sender_name, run.settings.sender),
        attendee=Person(recipient.name, recipient.email),
        method=method,
    )
    return Draft(recipient=recipient, email=email, ics=ics, ics_method=method)
