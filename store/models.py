"""SQLModel tables of samverkan.

Every timestamp is time-zone aware and stored in UTC (see ``UTCDateTime``); a cycle's own
zone is used only for display and for calendar invites.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime, utcnow


class Level(StrEnum):
    national = "national"
    regional = "regional"
    local = "local"


class Role(StrEnum):
    service_user = "service_user"
    professional = "professional"
    manager = "manager"
    politician = "politician"
    facilitator = "facilitator"


class CycleStatus(StrEnum):
    draft = "draft"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class StageStatus(StrEnum):
    pending = "pending"
    awaiting_approval = "awaiting_approval"
    approved = "approved"
    running = "running"
    done = "done"
    skipped = "skipped"
    failed = "failed"
    cancelled = "cancelled"
    held = "held"  # follows a cancelled meeting: waits for the coordinator (flows/cycles/plan.py)


FINISHED_STAGE = frozenset(
    {StageStatus.done, StageStatus.skipped, StageStatus.failed, StageStatus.cancelled}
)


class MessageStatus(StrEnum):
    draft = "draft"  # rendered, waiting for the coordinator's approval
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retry = "retry"
    failed = "failed"
    uncertain = "uncertain"
    dropped = "dropped"  # a draft that was never approved (stage cancelled or skipped)
    bounced = "bounced"  # sent, then a delivery status notification said it never arrived


class PartStat(StrEnum):
    needs_action = "NEEDS-ACTION"
    accepted = "ACCEPTED"
    declined = "DECLINED"
    tentative = "TENTATIVE"


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _enum(default: Any, **kw: Any) -> Any:
    # Enumerations are stored as their plain values, not as database enum types, so that a
    # later release can add a value without a type migration on PostgreSQL.
    return Field(default=default, sa_type=String(32), **kw)


def pk(row: Any) -> int:
    """The primary key of a row that has been stored (flushed or read back)."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has not been stored yet")
    return int(row.id)


class Organisation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    level: Level = _enum(Level.local)
    created_at: datetime = _ts(default_factory=utcnow)


class Participant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str
    # Lower-cased address: the identity used to match imports and calendar replies.
    email_key: str = Field(unique=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    role: Role = Field(sa_type=String(32))
    # A BCP 47 tag (sv, fi, ar, sv-x-easy for easy-to-read Swedish; messaging/i18n.py).
    language: str = Field(default="sv", sa_type=String(32))
    consent: bool = True
    erased: bool = False
    # A dead address (flows/people/mailbox.py): set by a permanent delivery failure, or by
    # SAMVERKAN_SOFT_BOUNCE_LIMIT temporary ones; cleared when the address changes.
    bounced_at: datetime | None = _ts(default=None, nullable=True)
    bounce_reason: str | None = None
    soft_bounces: int = 0
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class Cycle(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    template: str
    timezone: str
    status: CycleStatus = _enum(CycleStatus.running, index=True)
    start_at: datetime = _ts()
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Who receives the reflection report besides the coordinator.
    steering: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # Raised on every change of the plan, so that concurrent edits can be detected.
    plan_version: int = 1
    created_at: datetime = _ts(default_factory=utcnow)
    # The language the coordinator chose at launch for participants whose language the
    # template has no emails in (samverkan launch --fallback-language); None: none chosen.
    fallback_language: str | None = Field(default=None, sa_type=String(35))


class CycleMember(SQLModel, table=True):
    __tablename__ = "cycle_member"
    cycle_id: int = Field(foreign_key="cycle.id", primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", primary_key=True)
    added_at: datetime = _ts(default_factory=utcnow)


class Stage(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    key: str
    kind: str
    position: int
    # Timing: absolute (at) or relative to another stage's anchor time (anchor_key + offset).
    at: datetime | None = _ts(default=None, nullable=True)
    anchor_key: str | None = None
    offset_seconds: int = 0
    due_at: datetime = _ts(index=True)
    template: str | None = None
    audience: str = "all"
    unless: str | None = None
    approval_required: bool = False
    approved_at: datetime | None = _ts(default=None, nullable=True)
    # The organisations that must sign what the stage sends, before the coordinator's approval
    # (flows/cycles/signoff.py). Empty: no sign-off.
    signoff: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The hashes of the texts the coordinator's approval covered (a stage that is signed).
    approved_texts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: StageStatus = _enum(StageStatus.pending, index=True)
    ran_at: datetime | None = _ts(default=None, nullable=True)
    note: str | None = None


class Meeting(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    stage_id: int = Field(foreign_key="stage.id", unique=True)
    uid: str = Field(unique=True)
    sequence: int = 0
    starts_at: datetime = _ts()
    ends_at: datetime = _ts()
    summary: str
    location: str = ""
    cancelled: bool = False


class MeetingAttendee(SQLModel, table=True):
    __tablename__ = "meeting_attendee"
    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", primary_key=True)
    partstat: PartStat = _enum(PartStat.needs_action)
    updated_at: datetime = _ts(default_factory=utcnow)


class Message(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("stage_id", "to_key", "revision"),
        Index("ix_message_status_next", "status", "next_attempt_at"),
        Index("ix_message_cycle_status", "cycle_id", "status", "stage_id", "participant_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    stage_id: int = Field(foreign_key="stage.id", index=True)
    participant_id: int | None = Field(default=None, foreign_key="participant.id", index=True)
    to_email: str
    to_key: str
    to_name: str
    revision: int = 0
    category: str  # invitation | meeting | reminder | followup | reflection
    # The language the message is written in (its Content-Language): the participant's, or
    # the one their text fell back to. None for messages queued before it was kept.
    content_language: str | None = Field(default=None, sa_type=String(35))
    subject: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    ics: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ics_method: str | None = None
    attachment_name: str | None = None
    attachment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: MessageStatus = _enum(MessageStatus.queued)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(default=None, nullable=True)
    claimed_at: datetime | None = _ts(default=None, nullable=True)
    last_error: str | None = None
    message_id: str | None = None
    server_reply: str | None = None
    created_at: datetime = _ts(default_factory=utcnow)
    sent_at: datetime | None = _ts(default=None, nullable=True)


class InboxMessage(SQLModel, table=True):
    """A message from the coordinator's mailbox that samverkan understood and acted on (a
    calendar reply, a delivery status notification, an auto-reply), kept by the SHA-256 of
    its bytes so that no message is handled twice, whichever way it was read again."""

    __tablename__ = "inbox_message"
    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(unique=True)
    kind: str = Field(sa_type=String(16))  # reply | bounce | delay | auto-reply
    participant_id: int | None = Field(default=None, foreign_key="participant.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="message.id")  # what caused it
    status: str | None = None  # the DSN's status code, e.g. 5.1.1
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    source: str = ""  # the file's name, or the IMAP mailbox
    uidvalidity: int | None = Field(default=None, sa_type=BigInteger)  # UIDs are 32-bit unsigned
    uid: int | None = Field(default=None, sa_type=BigInteger)
    flagged: bool = False  # marked (or moved) on the IMAP server
    handled_at: datetime = _ts(default_factory=utcnow)


class ImapCursor(SQLModel, table=True):
    """How far ``inbox fetch`` has read an IMAP mailbox: every UID up to ``last_uid`` under
    ``uidvalidity`` has been looked at (RFC 3501: UIDs hold only under one UIDVALIDITY)."""

    __tablename__ = "imap_cursor"
    mailbox: str = Field(primary_key=True)  # user@host:port/folder
    uidvalidity: int = Field(sa_type=BigInteger)
    last_uid: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = _ts(default_factory=utcnow)


class AccessToken(SQLModel, table=True):
    """A participant's personal link to a page: only the token's SHA-256 is kept."""

    __tablename__ = "access_token"
    __table_args__ = (UniqueConstraint("stage_id", "participant_id", "purpose"),)
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    purpose: str = Field(sa_type=String(16))  # answers | rsvp
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    stage_id: int = Field(foreign_key="stage.id")
    participant_id: int = Field(foreign_key="participant.id", index=True)
    created_at: datetime = _ts(default_factory=utcnow)


class Response(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("stage_id", "participant_id", "question_id"),
        # Covers the indicator queries, which read a cycle's answers by participant.
        Index("ix_response_cycle_people", "cycle_id", "participant_id", "scale_value"),
    )
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    stage_id: int = Field(foreign_key="stage.id", index=True)
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
    question_id: str
    # The instrument the question belongs to, as the cycle asked it (None: the free library).
    instrument: str | None = None
    instrument_version: int | None = None
    scale_value: int | None = None
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class InstrumentQuestion(SQLModel, table=True):
    """The wording an instrument's question had when a cycle first asked it, as a
    fingerprint: a later launch with other wording under the same version is refused."""

    __tablename__ = "instrument_question"
    instrument: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    question_id: str = Field(primary_key=True)
    fingerprint: str
    first_cycle_id: int | None = None
    recorded_at: datetime = _ts(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int | None = Field(default=None, foreign_key="cycle.id", index=True)
    at: datetime = _ts(default_factory=utcnow)
    actor: str = "coordinator"
    action: str
    stage_key: str | None = None
    detail: str = ""
    reason: str | None = None


class AccountRole(StrEnum):
    """What a workspace account may do: everything, sign its organisation's drafts, read."""

    coordinator = "coordinator"
    signer = "signer"
    viewer = "viewer"


class Account(SQLModel, table=True):
    """A person who signs in to the workspace (never a participant: they have links)."""

    id: int | None = Field(default=None, primary_key=True)
    email: str
    # Lower-cased address, the identity used at login.
    email_key: str = Field(unique=True)
    role: AccountRole = Field(sa_type=String(16))
    # Which organisation a signer signs for (by name, as participants' organisations are).
    organisation: str | None = None
    # Argon2id in PHC form; empty until a password is set (an account that only signs in
    # through single sign-on later keeps it empty and has its issuer's subject below).
    password_hash: str = ""
    sso_subject: str | None = Field(default=None, unique=True)
    disabled: bool = False
    created_at: datetime = _ts(default_factory=utcnow)
    password_changed_at: datetime | None = _ts(default=None)


class WebSession(SQLModel, table=True):
    """A signed-in browser. Only the cookie's SHA-256 is stored."""

    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    # The token every form of this session carries (OWASP's synchronizer token pattern).
    csrf: str
    created_at: datetime = _ts(default_factory=utcnow)
    seen_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()


class LoginFailure(SQLModel, table=True):
    """A refused login, kept for the throttle (per account and per client address)."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_at", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    email_key: str = Field(index=True)
    address: str = Field(index=True)
    at: datetime = _ts(default_factory=utcnow)


class SignoffVariant(SQLModel, table=True):
    """One text a stage sends, as its signers read it: one language and the roles that get
    the same words, with the personal parts as markers. ``content_hash`` names it."""

    __tablename__ = "signoff_variant"
    __table_args__ = (UniqueConstraint("stage_id", "content_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stage.id", index=True)
    content_hash: str
    language: str = Field(sa_type=String(35))
    roles: str = ""  # comma-separated roles that get this text
    subject: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    calendar: str = ""
    # What the stage would send now (the last look); an old text stays, with its signatures.
    current: bool = True
    first_seen_at: datetime = _ts(default_factory=utcnow)


class Signature(SQLModel, table=True):
    """One organisation's signature on one text of a stage, by one of its signers."""

    __table_args__ = (Index("ix_signature_stage_org", "stage_id", "organisation"),)
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stage.id")
    content_hash: str
    organisation: str
    account_email: str
    signed_at: datetime = _ts(default_factory=utcnow)
    # Set when what would be sent no longer hashes to what was signed.
    void_at: datetime | None = _ts(default=None, nullable=True)
    void_reason: str | None = None


class SignoffComment(SQLModel, table=True):
    """A signer's request for a change (or the coordinator's answer): the stage's thread."""

    __tablename__ = "signoff_comment"
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stage.id", index=True)
    organisation: str | None = None
    author: str
    at: datetime = _ts(default_factory=utcnow)
    text: str = Field(sa_column=Column(Text, nullable=False))
    content_hashes: str = ""  # the texts it was written about, comma-separated


class SignoffNotice(SQLModel, table=True):
    """An email about sign-off: to an organisation's signers (waiting, reminder, void) or to
    the coordinator (overdue, change requested). Kept so that nobody is told twice."""

    __tablename__ = "signoff_notice"
    __table_args__ = (Index("ix_signoff_notice_stage", "stage_id", "organisation", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stage.id")
    organisation: str | None = None  # None: to the coordinator
    kind: str = Field(sa_type=String(16))  # waiting | reminder | void | overdue | change
    content_hashes: str = ""
    at: datetime = _ts(default_factory=utcnow)
