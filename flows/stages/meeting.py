"""A meeting: one calendar invite (iMIP REQUEST) per participant, with a stable UID."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flows.stages.base import Draft, Recipient, StageRun
from flows.stages.email import AudienceKind
from messaging.calendar import Invites, MeetingInfo, Person
from messaging.render import render_extra
from store import queries
from store.models import Meeting, PartStat, pk
from store.types import utcnow

__all__ = ["MeetingKind", "attendees", "notice"]


def _times(run: StageRun) -> tuple[datetime, datetime]:
    starts = datetime.fromisoformat(run.stage.config["starts_at"])
    return starts, starts + timedelta(minutes=int(run.stage.config["duration_minutes"]))


def _info(
    run: StageRun, recipient: Recipient, meeting: Meeting | None, *, template: str | None = None
) -> MeetingInfo:
    starts, ends = _times(run)
    name = template or run.stage.template or ""
    language = run.reading(recipient.language, name)
    key = (name, language, "summary")
    summary = run.shared_renders.get(key)
    if summary is None:
        context = run.context(recipient, meeting=run.meetings()[run.stage.key])
        summary = (
            render_extra(run.template.emails, name, language, "summary", context) or run.cycle.name
        )
        if not run.template.emails.personal(name, language, "summary"):
            run.shared_renders[key] = summary
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


def _invite(run: StageRun, info: MeetingInfo, recipient: Recipient, method: str) -> str:
    """The calendar text for one attendee; the calendar itself is built once per run."""
    key = f"invites:{method}"
    if key not in run.memo:
        run.memo[key] = Invites(
            organizer=Person(run.settings.sender_name, run.settings.sender),
            method=method,
            stamp=utcnow(),
        )
    invites: Invites = run.memo[key]
    return invites.for_attendee(info, Person(recipient.name, recipient.email))


def attendees(run: StageRun, meeting: Meeting) -> list[Recipient]:
    """Everyone invited to the meeting who can still be written to."""
    invited = queries.partstats(run.session, meeting_id=pk(meeting))
    return [
        Recipient.of(p, o, run.reading(p.language))
        for p, o in run.active_members
        if p.id in invited
    ]


def notice(
    run: StageRun,
    meeting: Meeting | None,
    recipient: Recipient,
    *,
    method: str,
    template: str,
    change: dict[str, Any],
) -> Draft:
    """An update (REQUEST, same UID, higher SEQUENCE) or a cancellation (CANCEL)."""
    local = run.meetings()[run.stage.key]
    email = run.render(recipient, template=template, meeting=local, change=change)
    ics = _invite(run, _info(run, recipient, meeting, template=template), recipient, method)
    return Draft(recipient=recipient, email=email, ics=ics, ics_method=method)


class MeetingKind(AudienceKind):
    """Writes to the stage's audience, as an email does; keeps the meeting and its attendees."""

    name = "meeting"

    def prepare(self, run: StageRun) -> None:
        """The meeting's calendar identity, created on first announcement."""
        meeting = queries.meeting_of(run.session, stage_id=pk(run.stage))
        starts, ends = _times(run)
        if meeting is None:
            meeting = Meeting(
                cycle_id=pk(run.cycle),
                stage_id=pk(run.stage),
                uid=f"{uuid.uuid4()}@{run.settings.mail_domain}",
                sequence=0,
                starts_at=starts,
                ends_at=ends,
                summary=run.cycle.name,
                location=run.stage.config.get("location", ""),
            )
            run.session.add(meeting)
            run.session.flush()
        run.memo["meeting"] = meeting

    def admit(self, run: StageRun, people: list[Recipient]) -> None:
        """Record ``people`` as the meeting's attendees (those not recorded yet)."""
        meeting = _meeting(run)
        ids = [r.participant_id for r in people if r.participant_id is not None]
        if meeting is None or not ids:
            return
        known = queries.invited_among(run.session, meeting_id=pk(meeting), participant_ids=ids)
        now = utcnow()
        fresh = [
            {
                "meeting_id": pk(meeting),
                "participant_id": pid,
                "partstat": PartStat.needs_action.value,
                "updated_at": now,
            }
            for pid in dict.fromkeys(ids)
            if pid not in known
        ]
        if fresh:
            queries.insert_attendees(run.session, rows=fresh)

    def draft(self, run: StageRun, recipient: Recipient) -> Draft:
        meeting = _meeting(run)
        email = run.render(recipient, meeting=run.meetings()[run.stage.key])
        ics = _invite(run, _info(run, recipient, meeting), recipient, "REQUEST")
        return Draft(recipient=recipient, email=email, ics=ics, ics_method="REQUEST")

    def notices(self, run: StageRun, recipient: Recipient) -> list[Draft]:
        """The update and the cancellation the meeting would send if it moved or was called off
        (to check that they render)."""
        meeting = _meeting(run)
        name = run.stage.template
        moved = {"old_starts": run.meetings()[run.stage.key]["starts"]}
        return [
            notice(
                run, meeting, recipient, method="REQUEST", template=f"{name}-update", change=moved
            ),
            notice(run, meeting, recipient, method="CANCEL", template=f"{name}-cancel", change={}),
        ]
