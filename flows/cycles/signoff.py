"""Sign-off by the agencies: where a stage's sign-off stands, signing, asking for a change.

The texts, their hashes and the record's upkeep are in flows/stages/signoff.py; this module
is what the CLI (``samverkan signoff``), the workspace and the tick call. Each organisation a
stage names in ``signoff`` signs every text of it through one of its signer accounts; the
coordinator's approval, if the stage needs one, comes after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from flows.cycles import plan
from flows.settings import Settings
from flows.stages import KINDS
from flows.stages import signoff as texts
from flows.stages.base import StageRun
from flows.stages.signoff import Look, Text, missing
from flows.templates import template_of
from flows.wording import NOT_THE_SIGNED_TEXT, WAITING_FOR_SIGNOFF
from store import queries
from store.db import session_scope
from store.errors import InvalidInput, NotFound, PermissionDenied, SamverkanError, StateError
from store.models import (
    AccountRole,
    Cycle,
    Signature,
    SignoffComment,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow

# A stage in these states has not been drafted: its texts are rendered afresh when looked at.
NOT_RUN = (StageStatus.pending, StageStatus.approved, StageStatus.held)
MAX_COMMENT = 4000


@dataclass(frozen=True)
class SignatureView:
    organisation: str
    account: str
    content_hash: str
    language: str
    signed_at: datetime
    void_at: datetime | None = None
    void_reason: str | None = None


@dataclass(frozen=True)
class CommentView:
    at: datetime
    author: str
    organisation: str | None
    text: str
    content_hashes: list[str]


@dataclass(frozen=True)
class OrganisationView:
    organisation: str
    signers: list[str]  # its signer accounts (who is asked)
    missing: list[Text]  # the texts it has not signed
    signed: list[SignatureView]  # its valid signatures on the current texts


@dataclass
class SignoffStatus:
    cycle_id: int
    cycle_name: str
    stage: str
    kind: str
    status: str
    due: datetime
    overdue: bool
    approval_required: bool
    approved: bool
    required: list[str]
    texts: list[Text]
    organisations: list[OrganisationView]
    signatures: list[SignatureView] = field(default_factory=list)  # every one, void too
    comments: list[CommentView] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(not o.missing for o in self.organisations)

    def waiting_line(self) -> str:
        return ", ".join(
            f"{o.organisation} ({', '.join(sorted({t.language for t in o.missing}))})"
            for o in self.organisations
            if o.missing
        )

    def as_json(self) -> dict[str, Any]:
        def text(t: Text) -> dict[str, Any]:
            return {
                "hash": t.content_hash,
                "language": t.language,
                "roles": list(t.roles),
                "subject": t.subject,
            }

        return {
            "cycle": self.cycle_id,
            "stage": self.stage,
            "status": self.status,
            "due": self.due.isoformat(),
            "overdue": self.overdue,
            "complete": self.complete,
            "approval_required": self.approval_required,
            "approved": self.approved,
            "required": self.required,
            "texts": [text(t) for t in self.texts],
            "organisations": [
                {
                    "organisation": o.organisation,
                    "signers": o.signers,
                    "missing": [t.content_hash for t in o.missing],
                    "signed": [
                        {**asdict(s), "signed_at": s.signed_at.isoformat()} for s in o.signed
                    ],
                }
                for o in self.organisations
            ],
            "void": [
                {
                    **asdict(s),
                    "signed_at": s.signed_at.isoformat(),
                    "void_at": s.void_at.isoformat() if s.void_at else None,
                }
                for s in self.signatures
                if s.void_at is not None
            ],
            "comments": [{**asdict(c), "at": c.at.isoformat()} for c in self.comments],
        }


def _preview(session: Session, settings: Settings, cycle: Cycle, stage: Stage) -> StageRun:
    run = StageRun(session, settings, cycle, stage, template_of(settings, cycle), utcnow())
    run.validating = True
    return run


def current_texts(
    session: Session, settings: Settings, cycle: Cycle, stage: Stage, *, notify: bool = True
) -> Look:
    """The stage's texts now: rendered afresh (and the record kept in step) while it has
    not run, the stored ones once its drafts are made."""
    if stage.status in NOT_RUN:
        return texts.look(
            _preview(session, settings, cycle, stage), KINDS[stage.kind], notify=notify
        )
    current = texts.stored(session, stage)
    return Look(current, {}, missing(session, stage, current), [], [])


def _view(sig: Signature, languages: dict[str, str]) -> SignatureView:
    return SignatureView(
        sig.organisation,
        sig.account_email,
        sig.content_hash,
        languages.get(sig.content_hash, ""),
        sig.signed_at,
        sig.void_at,
        sig.void_reason,
    )


def _status(session: Session, cycle: Cycle, stage: Stage, state: Look) -> SignoffStatus:
    all_variants = queries.signoff_variants(session, stage_id=pk(stage))
    languages = {v.content_hash: v.language for v in all_variants}
    every = queries.signatures(session, stage_id=pk(stage))
    current = {t.content_hash for t in state.texts}
    organisations = [
        OrganisationView(
            org,
            texts.signers_of(session, org),
            state.missing.get(org, []),
            [
                _view(s, languages)
                for s in every
                if s.organisation == org and s.void_at is None and s.content_hash in current
            ],
        )
        for org in stage.signoff
    ]
    now = utcnow()
    return SignoffStatus(
        cycle_id=pk(cycle),
        cycle_name=cycle.name,
        stage=stage.key,
        kind=stage.kind,
        status=str(stage.status),
        due=stage.due_at.astimezone(plan.zone(cycle.timezone)),
        overdue=stage.status in NOT_RUN and stage.due_at <= now and not state.complete,
        approval_required=stage.approval_required,
        approved=stage.approved_at is not None,
        required=list(stage.signoff),
        texts=state.texts,
        organisations=organisations,
        signatures=[_view(s, languages) for s in every],
        comments=[
            CommentView(
                c.at,
                c.author,
                c.organisation,
                c.text,
                [h for h in c.content_hashes.split(",") if h],
            )
            for c in queries.signoff_comments(session, stage_id=pk(stage))
        ],
    )


def _stage_with_signoff(session: Session, cycle_id: int, key: str) -> tuple[Cycle, Stage]:
    cycle = queries.get_cycle(session, cycle_id=cycle_id)
    stage = queries.get_stage(session, cycle_id=cycle_id, key=key)
    if not stage.signoff:
        raise StateError(
            f"stage {key!r} needs no sign-off; to ask for it: "
            f"samverkan stage edit {cycle_id} {key} --signoff ORGANISATION"
        )
    return cycle, stage


def signoff_status(engine: Engine, settings: Settings, *, cycle_id: int, key: str) -> SignoffStatus:
    """Where the stage's sign-off stands: its texts, who signed which, what is missing."""
    with session_scope(engine) as session:
        cycle, stage = _stage_with_signoff(session, cycle_id, key)
        # Looking voids what no longer matches (a fact), but emails nobody: the tick does,
        # so that reading a page never sends mail.
        state = current_texts(session, settings, cycle, stage, notify=False)
        return _status(session, cycle, stage, state)


def _signer(session: Session, email: str, stage: Stage, *, cycle_id: int) -> Any:
    account = queries.account_by_email(session, email_key=email.strip().lower())
    if account is None or account.disabled:
        raise PermissionDenied(
            f"{email} has no active workspace account; a coordinator adds one with: "
            f"samverkan users add {email} --role signer --org ORGANISATION"
        )
    if account.role != AccountRole.signer:
        what = (
            "coordinators approve, signers sign: samverkan approve"
            if account.role == AccountRole.coordinator
            else "a viewer reads, and cannot sign"
        )
        raise PermissionDenied(f"{email} is a {account.role}: {what}")
    if account.organisation not in stage.signoff:
        raise PermissionDenied(
            f"{email} signs for {account.organisation}, which is not asked to sign "
            f"{stage.key} (asked: {', '.join(stage.signoff)})"
        )
    return account


def _same_texts(seen: list[str], current: list[str]) -> bool:
    """Whether ``seen`` (full hashes, or their first 12 digits or more) names exactly the
    texts of ``current``."""
    wanted = {h.strip().lower() for h in seen if h.strip()}
    if any(len(h) < 12 for h in wanted) or len(wanted) != len(current):
        return False
    return all(any(h.startswith(p) for p in wanted) for h in current)


def sign(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    email: str,
    seen: list[str] | None = None,
) -> str:
    """Sign, for the signer's organisation, every text of the stage it has not signed.

    ``seen``: the hashes of the texts the signer read (the workspace sends them; the CLI's
    ``--text``), whole or their first 12 digits; if the stage would now send anything else,
    nothing is signed.
    """
    with session_scope(engine) as session:
        cycle, stage = _stage_with_signoff(session, cycle_id, key)
        account = _signer(session, email, stage, cycle_id=cycle_id)
        if stage.status not in NOT_RUN:
            raise StateError(f"stage {key!r} is {stage.status}: there is nothing left to sign")
        state = current_texts(session, settings, cycle, stage, notify=False)
        org = str(account.organisation)
        now_hashes = sorted(t.content_hash for t in state.texts)
        if seen is not None and not _same_texts(seen, now_hashes):
            raise StateError(
                f"the text of {key} changed since you read it; nothing was signed: read it "
                "again and sign what you see"
            )
        wanted = state.missing.get(org, [])
        if not wanted:
            raise StateError(f"{org} has already signed every text of {key}")
        now = utcnow()
        for t in wanted:
            session.add(
                Signature(
                    stage_id=pk(stage),
                    content_hash=t.content_hash,
                    organisation=org,
                    account_email=account.email,
                    signed_at=now,
                )
            )
            queries.audit(
                session,
                cycle_id=cycle_id,
                action="signoff.sign",
                stage_key=key,
                detail=f"{org} signed the {t.language} text {t.content_hash} "
                f"(roles: {', '.join(r or '-' for r in t.roles)})",
                actor=account.email,
            )
        session.flush()
        left = missing(session, stage, state.texts)
        still = [o for o, w in left.items() if w]
        done = f"{org} signed {len(wanted)} text{'s' if len(wanted) != 1 else ''} of {key}"
        if still:
            return f"{done}; still waiting for {', '.join(still)}"
        if stage.note and stage.note.startswith((WAITING_FOR_SIGNOFF, NOT_THE_SIGNED_TEXT)):
            stage.note = None
            session.add(stage)
        nxt = (
            f"the coordinator approves next: samverkan approve {cycle_id} {key}"
            if stage.approval_required and stage.approved_at is None
            else "it is sent when due"
        )
        return f"{done}; every organisation has signed, {nxt}"


def request_change(
    engine: Engine,
    settings: Settings,
    *,
    cycle_id: int,
    key: str,
    email: str,
    comment: str,
) -> str:
    """A signer asks for a change (or the coordinator answers): kept with the stage, and
    the coordinator is emailed."""
    words = comment.strip()
    if not words:
        raise InvalidInput("--comment is empty: say what should change")
    if len(words) > MAX_COMMENT:
        raise InvalidInput(f"--comment is too long: at most {MAX_COMMENT} characters")
    with session_scope(engine) as session:
        cycle, stage = _stage_with_signoff(session, cycle_id, key)
        if stage.status not in NOT_RUN:
            raise StateError(f"stage {key!r} is {stage.status}: its text can no longer change")
        account = queries.account_by_email(session, email_key=email.strip().lower())
        if account is not None and account.role == AccountRole.coordinator and not account.disabled:
            org = None
        else:
            org = str(_signer(session, email, stage, cycle_id=cycle_id).organisation)
        state = current_texts(session, settings, cycle, stage, notify=False)
        hashes = sorted(t.content_hash for t in state.texts)
        now = utcnow()
        session.add(
            SignoffComment(
                stage_id=pk(stage),
                organisation=org,
                author=account.email if account else email,
                at=now,
                text=words,
                content_hashes=",".join(hashes),
            )
        )
        queries.audit(
            session,
            cycle_id=cycle_id,
            action="signoff.comment" if org is None else "signoff.change_requested",
            stage_key=key,
            detail=f"on texts {', '.join(hashes)}: {words}",
            actor=account.email if account else email,
        )
        if org is not None:
            who = f"{email} ({org})"
            texts.notify(
                session,
                settings,
                cycle,
                stage,
                None,
                "change",
                state.texts,
                now=now,
                extra=f"{who}\n{words}",
            )
            return f"your request for a change to {key} is kept; the coordinator is told"
        return f"your comment on {key} is kept with the stage"


@dataclass(frozen=True)
class Waiting:
    """A stage waiting for one organisation's signature (for a signer's list)."""

    cycle_id: int
    cycle_name: str
    stage: str
    due: datetime
    languages: list[str]


def waiting_for(engine: Engine, *, organisation: str) -> list[Waiting]:
    """The stages that wait for ``organisation``'s signature, by what was last looked at
    (the tick looks at each one every time it runs)."""
    found = []
    with session_scope(engine) as session:
        for stage in queries.stages_awaiting_signoff(session):
            if organisation not in stage.signoff:
                continue
            current = texts.stored(session, stage)
            wanted = missing(session, stage, current).get(organisation, [])
            if not wanted:
                continue
            cycle = queries.get_cycle(session, cycle_id=stage.cycle_id)
            found.append(
                Waiting(
                    pk(cycle),
                    cycle.name,
                    stage.key,
                    stage.due_at.astimezone(plan.zone(cycle.timezone)),
                    sorted({t.language for t in wanted}),
                )
            )
    return found


def look_around(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """For the tick: look at every stage still waiting for sign-off (a changed template file
    voids what it changes), ask who has not been asked, remind who has waited too long."""
    with session_scope(engine) as session:
        ids = [(pk(s), s.cycle_id) for s in queries.stages_awaiting_signoff(session)]
    lines = []
    for stage_id, cycle_id in ids:
        try:
            with session_scope(engine) as session:
                cycle = queries.get_cycle(session, cycle_id=cycle_id)
                stage = session.get(Stage, stage_id)
                if stage is None or stage.status not in NOT_RUN:
                    continue
                run = replace(_preview(session, settings, cycle, stage), now=now)
                state = texts.look(run, KINDS[stage.kind])
                reminded = texts.remind_due(session, settings, cycle, stage, state, now=now)
                if state.voided:
                    lines.append(
                        f"cycle {cycle_id}: {stage.key}: {len(state.voided)} signature(s) void "
                        "(the text changed)"
                    )
                if state.told:
                    lines.append(f"cycle {cycle_id}: {stage.key}: asked {', '.join(state.told)}")
                if reminded:
                    lines.append(f"cycle {cycle_id}: {stage.key}: reminded {', '.join(reminded)}")
        except SamverkanError:
            continue  # a broken template: the stage fails with its reason when it is due
    return lines


def check_organisations(session: Session, names: list[str]) -> list[str]:
    """``names`` cleaned and checked against the organisations known (one line of error)."""
    known = set(queries.organisation_names(session))
    cleaned = []
    for raw in names:
        name = " ".join(str(raw).split())
        if not name:
            raise InvalidInput("an empty organisation name in --signoff")
        if name not in known:
            listed = ", ".join(sorted(known)) or "none yet: import participants first"
            raise NotFound(f"no organisation {name!r} to sign (organisations: {listed})")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def summary(session: Session, stage: Stage) -> dict[str, Any] | None:
    """What ``cycle show`` says of a stage's sign-off, from the record (no rendering): the
    texts as last looked at, who signed which when, who asked for changes, what is missing."""
    if not stage.signoff:
        return None
    current = texts.stored(session, stage)
    languages = {t.content_hash: t.language for t in current}
    valid = [
        s
        for s in queries.signatures(session, stage_id=pk(stage), valid=True)
        if s.content_hash in languages
    ]
    missing_now = missing(session, stage, current)
    return {
        "required": list(stage.signoff),
        "texts": [{"hash": t.content_hash, "language": t.language} for t in current],
        "signed": [
            {
                "organisation": s.organisation,
                "by": s.account_email,
                "language": languages[s.content_hash],
                "hash": s.content_hash,
                "at": s.signed_at.isoformat(),
            }
            for s in valid
        ],
        "missing": {
            org: sorted({t.language for t in wanted})
            for org, wanted in missing_now.items()
            if wanted
        },
        "void": len(queries.signatures(session, stage_id=pk(stage), valid=False)),
        "change_requests": [
            {"by": c.author, "organisation": c.organisation, "at": c.at.isoformat(), "text": c.text}
            for c in queries.signoff_comments(session, stage_id=pk(stage))
            if c.organisation is not None
        ],
    }
