"""What every stage kind shares: recipients, template context, drafts and their outbox rows.

What a stage kind must do is ``StageKind`` (flows/stages/kind.py). ``execute`` is the same
for all kinds: claim the stage, draft its messages a chunk of recipients at a time, write
each chunk to the outbox and move the stage on, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from flows.people.audience import parse_audience
from flows.settings import Settings
from flows.templates import LANGUAGES, ProcessTemplate
from messaging import i18n, links
from messaging.i18n import NP_
from messaging.render import RenderedEmail
from store import queries
from store.errors import TemplateError
from store.models import (
    Cycle,
    MessageStatus,
    Organisation,
    Participant,
    PartStat,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow

# How each role is named to people (msgctxt "role" in the catalogue).
ROLE_LABELS = {
    "service_user": NP_("role", "participant"),
    "professional": NP_("role", "professional"),
    "manager": NP_("role", "manager"),
    "politician": NP_("role", "elected member"),
    "facilitator": NP_("role", "facilitator"),
}


def role_label(role: str, language: str) -> str:
    """A role as ``language`` names it ('deltagare', 'participant')."""
    label = ROLE_LABELS.get(role)
    return str(i18n.translations(language).pgettext("role", label)) if label else role


PERSONAL_FIELDS = ("name", "first_name", "email", "organisation")


@dataclass(frozen=True)
class Recipient:
    participant_id: int | None
    name: str
    email: str
    language: str
    organisation: str = ""
    role: str = ""
    # Rendered for sign-off: the personal values are markers (flows/stages/signoff.py), so
    # that one text stands for everyone of this language and role.
    marked: bool = False

    @classmethod
    def of(cls, person: Participant, org: Organisation, language: str | None = None) -> Recipient:
        """``language``: the one the stage's emails are read in (StageRun.reading), if not the
        person's own."""
        return cls(
            person.id,
            person.name,
            person.email,
            language or str(person.language),
            org.name,
            str(person.role),
        )

    def personal(self) -> dict[str, str]:
        """The values that differ between people of one language and role."""
        if self.marked:
            return {field: f"⟦{field}⟧" for field in PERSONAL_FIELDS}
        return {
            "name": self.name,
            "first_name": self.name.split()[0] if self.name.split() else self.name,
            "email": self.email,
            "organisation": self.organisation,
        }

    def context(self) -> dict[str, Any]:
        return {
            **self.personal(),
            "role": self.role,
            "role_label": role_label(self.role, self.language),
            "language": self.language,
        }


@dataclass(frozen=True)
class Draft:
    recipient: Recipient
    email: RenderedEmail
    ics: str | None = None
    ics_method: str | None = None
    attachment_name: str | None = None
    attachment: str | None = None


@dataclass
class StageRun:
    """One stage of one cycle, being drafted at ``now``."""

    session: Session
    settings: Settings
    cycle: Cycle
    stage: Stage
    template: ProcessTemplate
    now: datetime
    note: list[str] = field(default_factory=list)
    # (purpose, stage id, participant id) of every personal link put in a draft
    tokens: set[tuple[str, int, int]] = field(default_factory=set)
    validating: bool = False  # drafting only to check that everything renders (at launch)
    memo: dict[str, Any] = field(default_factory=dict)  # work shared by all recipients
    left_out: dict[str, int] = field(default_factory=dict)  # by the unless rule, with why
    bounced: set[int] = field(default_factory=set)  # of the audience, left out: address bounced
    # A language no email of the stage is written in, and what its readers got instead.
    unserved: dict[str, str] = field(default_factory=dict)
    rendered: set[tuple[str, str]] = field(default_factory=set)  # (template, language)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.cycle.timezone)

    @cached_property
    def plan(self) -> list[Stage]:
        return queries.stages_of(self.session, cycle_id=self.cycle.id)  # type: ignore[arg-type]

    @cached_property
    def active_members(self) -> list[tuple[Participant, Organisation]]:
        """The members who can be written to: not erased, not unsubscribed, and whose address
        has not bounced."""
        return [
            (p, o)
            for p, o in queries.members(self.session, cycle_id=self.cycle.id)  # type: ignore[arg-type]
            if not p.erased and p.consent and p.bounced_at is None
        ]

    def audience(self) -> list[tuple[Participant, Organisation]]:
        members = [
            (p, o)
            for p, o in queries.members(self.session, cycle_id=pk(self.cycle))
            if not p.erased and p.consent
        ]
        return self._reachable(parse_audience(self.stage.audience).select(members))

    def audience_chunks(self, size: int) -> Iterator[list[tuple[Participant, Organisation]]]:
        """The stage's audience, read ``size`` members at a time (memory stays flat)."""
        audience = parse_audience(self.stage.audience)
        after = 0
        while True:
            page = queries.members(self.session, cycle_id=pk(self.cycle), after=after, limit=size)
            if not page:
                return
            after = pk(page[-1][0])
            yield self._reachable(
                audience.select((p, o) for p, o in page if not p.erased and p.consent)
            )

    def _reachable(
        self, members: list[tuple[Participant, Organisation]]
    ) -> list[tuple[Participant, Organisation]]:
        """Leave out those of the audience whose address bounced, counting them for the note."""
        self.bounced.update(pk(p) for p, _ in members if p.bounced_at is not None)
        return [(p, o) for p, o in members if p.bounced_at is None]

    def meeting_stage(self) -> Stage | None:
        """The meeting this stage is about: the stage itself when it is a meeting, else the
        first meeting up its chain of anchors, else the plan's first meeting.

        Its RSVP link goes into the stage's emails, so a wrong answer here records a
        participant's answer on another meeting.
        """
        by_key = {s.key: s for s in self.plan}
        current: Stage | None = self.stage
        seen: set[str] = set()
        while current is not None and current.key not in seen:
            if current.kind == "meeting":
                return current
            seen.add(current.key)
            current = by_key.get(current.anchor_key) if current.anchor_key else None
        return next((s for s in self.plan if s.kind == "meeting"), None)

    def meetings(self) -> dict[str, dict[str, Any]]:
        """Every meeting of the plan in the cycle's zone (once per run: the plan is cached)."""
        if "meetings" not in self.memo:
            self.memo["meetings"] = self._meetings()
        return dict(self.memo["meetings"])

    def _meetings(self) -> dict[str, dict[str, Any]]:
        found = {}
        for s in self.plan:
            if s.kind != "meeting":
                continue
            starts = datetime.fromisoformat(s.config["starts_at"]).astimezone(self.tz)
            found[s.key] = {
                "starts": starts,
                "ends": starts + timedelta(minutes=int(s.config["duration_minutes"])),
                "location": s.config.get("location", ""),
            }
        return found

    def variables(self) -> dict[str, Any]:
        """The cycle's variables, datetimes in the cycle's zone (once per run)."""
        if "variables" not in self.memo:
            self.memo["variables"] = self._variables()
        return dict(self.memo["variables"])

    def _variables(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.spec.variables.items():
            raw = self.cycle.variables.get(name)
            if spec.type == "datetime" and raw is not None:
                values[name] = datetime.fromisoformat(raw).astimezone(self.tz)
            else:
                values[name] = raw
        return values

    def link(self, purpose: str, stage: Stage, recipient: Recipient) -> str:
        """A personal link (with a placeholder for the token, filled in at send time)."""
        assert recipient.participant_id is not None
        self.tokens.add((purpose, pk(stage), recipient.participant_id))
        return links.url(self.settings.base, purpose, links.placeholder(purpose, pk(stage)))

    def links_for(self, recipient: Recipient) -> dict[str, str]:
        """``links.answers`` (a follow-up, or the one a reminder is about) and
        ``links.rsvp`` (the meeting this stage is about), for participants."""
        if recipient.participant_id is None:
            return {}
        found = {}
        if self.stage.kind == "followup":
            found["answers"] = self.link("answers", self.stage, recipient)
        elif self.stage.unless and self.stage.unless.startswith("answered:"):
            target = next((s for s in self.plan if s.key == self.stage.unless[9:]), None)
            if target is not None:
                found["answers"] = self.link("answers", target, recipient)
        meeting_stage = self.meeting_stage()
        if meeting_stage is not None:
            found["rsvp"] = self.link("rsvp", meeting_stage, recipient)
        return found

    def context(self, recipient: Recipient, **extra: Any) -> dict[str, Any]:
        return {
            "links": self.links_for(recipient),
            "participant": recipient.context(),
            "cycle": {"id": self.cycle.id, "name": self.cycle.name},
            "vars": self.variables(),
            "meetings": self.meetings(),
            "sender": {"name": self.settings.sender_name, "email": self.settings.sender},
            "progress": self.progress,
            **extra,
        }

    def render(
        self, recipient: Recipient, *, template: str | None = None, **extra: Any
    ) -> RenderedEmail:
        name = template or self.stage.template
        assert name is not None
        language = self.reading(recipient.language, name)
        self.rendered.add((name, language))
        return self.template.emails.render(
            name, language, self.context(recipient, **extra), self.shared_renders
        )

    def reading(self, language: str, name: str | None = None) -> str:
        """The language of the email ``name`` (the stage's own) that a person who reads
        ``language`` gets: theirs, a less specific one (sv for sv-x-easy), or the fallback
        the coordinator chose at launch.

        A launch refuses a language nothing serves; a person who came later in one (added
        to the running cycle, or their language changed) gets Swedish, which every template
        has, and the stage's note says so rather than the stage failing for everyone."""
        name = name or self.stage.template or ""
        try:
            return self.template.reading(name, language, self.cycle.fallback_language)
        except TemplateError:
            if self.validating:
                raise
            self.unserved[language] = LANGUAGES[0]
            return self.template.reading(name, LANGUAGES[0])

    @property
    def shared_renders(self) -> dict[tuple[str, str, str], str]:
        """Renders that use nothing personal, by (template, language, field), for this run:
        every recipient of a run gets the same values besides participant and links."""
        found: dict[tuple[str, str, str], str] = self.memo.setdefault("renders", {})
        return found

    @cached_property
    def member_counts(self) -> tuple[int, int]:
        """(participants, organisations) who can be written to, counted in the database."""
        return queries.active_member_counts(self.session, cycle_id=pk(self.cycle))

    @cached_property
    def progress(self) -> dict[str, Any]:
        """What a progress note tells: the network's size and the next meeting."""
        upcoming = [
            (m["starts"], m)
            for key, m in self.meetings().items()
            if m["starts"] > self.now and not self._cancelled(key)
        ]
        participants, organisations = self.member_counts
        return {
            "organisations": organisations,
            "participants": participants,
            "next_meeting": min(upcoming, key=lambda pair: pair[0])[1] if upcoming else None,
        }

    def _cancelled(self, key: str) -> bool:
        return any(s.key == key and s.status == StageStatus.cancelled for s in self.plan)

    def unless_filter(
        self, members: Sequence[tuple[Participant, Organisation]]
    ) -> list[tuple[Participant, Organisation]]:
        """Drop those the stage's ``unless`` condition excludes (computed once per run)."""
        if not self.stage.unless:
            return list(members)
        done, why = self._unless_done()
        kept = [(p, o) for p, o in members if p.id not in done]
        self.left_out[why] = self.left_out.get(why, 0) + len(members) - len(kept)
        return kept

    def _unless_done(self) -> tuple[set[int], str]:
        if "unless" in self.memo:
            found: tuple[set[int], str] = self.memo["unless"]
            return found
        rule = self.stage.unless or ""
        if rule == "accepted":
            meeting_stage = self.meeting_stage()
            meeting = meeting_stage and queries.meeting_of(self.session, stage_id=pk(meeting_stage))
            stats = queries.partstats(self.session, meeting_id=pk(meeting)) if meeting else {}
            done = {pid for pid, s in stats.items() if s == PartStat.accepted.value}
            why = "accepted the meeting"
        elif rule.startswith("answered:"):
            target = queries.get_stage(self.session, cycle_id=pk(self.cycle), key=rule[9:])
            done = queries.respondents(self.session, stage_id=pk(target))
            why = f"answered {target.key}"
        else:  # responded: answered any follow-up of this cycle
            done = queries.respondents(self.session, cycle_id=pk(self.cycle))
            why = "responded"
        self.memo["unless"] = (done, why)
        return done, why

    def notes(self) -> list[str]:
        """What the coordinator is told about this run (who was left out and why)."""
        left = [f"{n} left out: already {why}" for why, n in self.left_out.items() if n]
        if self.bounced:
            left.append(f"{len(self.bounced)} left out: address bounced")
        left += [
            f"{lang} readers got {got}: no {lang} text and no fallback language chosen"
            for lang, got in sorted(self.unserved.items())
        ]
        return [*self.note, *left]


@dataclass(frozen=True)
class StageOutcome:
    key: str
    kind: str
    status: str
    messages: int
    note: str = ""


def write_drafts(
    run: StageRun,
    drafts: Sequence[Draft],
    *,
    category: str,
    status: MessageStatus,
    revision: int = 0,
) -> int:
    """Queue ``drafts`` in the outbox in one statement, with their links' token hashes."""
    if not drafts:
        return 0
    now = utcnow()
    rows = [
        {
            "cycle_id": pk(run.cycle),
            "stage_id": pk(run.stage),
            "participant_id": d.recipient.participant_id,
            "to_email": d.recipient.email,
            "to_key": d.recipient.email.lower(),
            "to_name": d.recipient.name,
            "category": category,
            "revision": revision,
            "content_language": d.email.language or None,
            "subject": d.email.subject,
            "text": d.email.text,
            "html": d.email.html,
            "ics": d.ics,
            "ics_method": d.ics_method,
            "attachment_name": d.attachment_name,
            "attachment": d.attachment,
            "status": MessageStatus(status).value,
            "attempts": 0,
            "next_attempt_at": None,
            "claimed_at": None,
            "last_error": None,
            "message_id": None,
            "server_reply": None,
            "created_at": now,
            "sent_at": None,
        }
        for d in drafts
    ]
    queries.insert_messages(run.session, rows=rows)
    people = {d.recipient.participant_id for d in drafts}
    # Every message to a participant carries a one-click unsubscribe link in its headers,
    # made when it is sent from the row's stage and participant: its hash is stored here.
    run.tokens.update(("unsubscribe", pk(run.stage), pid) for pid in people if pid is not None)
    _register_tokens(run, people)
    return len(rows)


def _register_tokens(run: StageRun, people: set[int | None]) -> None:
    """Store the hash of every personal link these drafts carry (never the token)."""
    wanted = sorted(t for t in run.tokens if t[2] in people)
    run.tokens.difference_update(wanted)  # registered: the run need not remember them
    if not wanted:
        return
    key = run.settings.link_key()
    known: set[tuple[str, int, int]] = set()
    for purpose, stage_id in sorted({(t[0], t[1]) for t in wanted}):
        ids = [t[2] for t in wanted if t[0] == purpose and t[1] == stage_id]
        rows = queries.participants_with_token(
            run.session, purpose=purpose, stage_id=stage_id, participant_ids=ids
        )
        known.update((purpose, stage_id, pid) for pid in rows)
    now = utcnow()
    fresh = [
        {
            "token_hash": links.token_hash(links.token_for(key, purpose, stage_id, pid)),
            "purpose": purpose,
            "cycle_id": pk(run.cycle),
            "stage_id": stage_id,
            "participant_id": pid,
            "created_at": now,
        }
        for purpose, stage_id, pid in wanted
        if (purpose, stage_id, pid) not in known
    ]
    if fresh:
        queries.insert_access_tokens(run.session, rows=fresh)
