"""Sign-off on the exact text: what a stage sends, as its signers read and sign it.

A stage that names organisations in ``signoff`` is sent only when each of them has signed
every **text** it sends. A text is what one language and role receive: subject, plain text,
HTML and the calendar line, rendered for a recipient whose personal values (name, first
name, address, organisation) are markers such as ``⟦name⟧``. Roles that get the same words
share one text. A text is named by the SHA-256 of its four parts (``content_hash``).

``look`` renders the texts as the stage would send them now and keeps the record in step:
a new text is stored, a signature on a text the stage no longer sends is void (its signer is
told, and an approval given in advance is withdrawn), and the organisations still to sign
are asked by email once per set of texts.

When the stage runs, every message is checked against the signed text of its language and
role: it must be that text with the markers filled in with the recipient's own values
(``differs``). Otherwise nothing is sent, and the stage says why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from markdown_it.common.utils import escapeHtml
from sqlmodel import Session

from flows.cycles.plan import zone
from flows.settings import Settings
from flows.stages.base import PERSONAL_FIELDS, Draft, Recipient, StageRun
from flows.stages.kind import StageKind
from messaging import calendar, i18n
from messaging.headers import clean_header
from messaging.i18n import N_
from store import queries
from store.models import (
    AccountRole,
    Cycle,
    MessageStatus,
    Signature,
    SignoffNotice,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow

MARKS = {field: f"⟦{field}⟧" for field in PERSONAL_FIELDS}


@dataclass(frozen=True)
class Text:
    """One text of a stage as it is signed: markers where each person's values go."""

    language: str
    roles: tuple[str, ...]
    subject: str
    text: str
    html: str
    calendar: str
    content_hash: str

    @property
    def short(self) -> str:
        return short(self.content_hash)


def short(content_hash: str) -> str:
    """The first 12 hex digits: what people read and compare."""
    return content_hash[:12]


def content_hash(subject: str, text: str, html: str, calendar_line: str) -> str:
    body = json.dumps([subject, text, html, calendar_line], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _parts(draft: Draft) -> tuple[str, str, str, str]:
    line = calendar.summary(draft.ics) if draft.ics else ""
    return draft.email.subject, draft.email.text, draft.email.html, line


def texts(run: StageRun, kind: StageKind) -> dict[tuple[str, str], Text]:
    """The stage's texts now, by (language, role) of those it writes to."""
    people: dict[tuple[str, str], Recipient] = {}
    for r in kind.recipients(run, validating=True):
        people.setdefault((r.language, r.role), r)
    parts = {
        group: _parts(kind.draft(run, replace(r, marked=True)))
        for group, r in sorted(people.items())
    }
    roles: dict[str, list[str]] = {}
    for (_, role), p in parts.items():
        roles.setdefault(content_hash(*p), []).append(role)
    found = {}
    for (language, _), p in parts.items():
        h = content_hash(*p)
        found[(language, _)] = Text(language, tuple(sorted(roles[h])), *p, content_hash=h)
    return found


def distinct(found: Iterable[Text]) -> list[Text]:
    """Each text once, by language."""
    seen: dict[str, Text] = {}
    for t in found:
        seen.setdefault(t.content_hash, t)
    return sorted(seen.values(), key=lambda t: (t.language, t.roles))


def _html_value(value: str) -> str:
    return escapeHtml(" ".join(value.split()))


def filled(text: Text, recipient: Recipient) -> tuple[str, str, str, str]:
    """The text with this recipient's values in place of the markers."""
    values = recipient.personal()

    def put(part: str, escape: Any = str) -> str:
        for field, mark in MARKS.items():
            part = part.replace(mark, escape(values[field]))
        return part

    return (
        clean_header(put(text.subject)),  # as the renderer cleans a subject
        put(text.text),
        put(text.html, _html_value),
        put(text.calendar),
    )


def differs(text: Text, draft: Draft) -> str | None:
    """Why this message is not the signed text filled in with its recipient's values, or
    None when it is."""
    expected = filled(text, draft.recipient)
    for name, want, got in zip(
        ("subject", "text", "HTML", "calendar invite"), expected, _parts(draft), strict=True
    ):
        if want != got:
            return (
                f"the {name} to {draft.recipient.email} is not the signed text "
                f"{text.short} with their values filled in: the email uses a personal value "
                "in a way sign-off cannot show (use it as it is, e.g. "
                "{{ participant.first_name }}), or this person's details hold something "
                "the email changes (look at them with: samverkan participants list)"
            )
    return None


# -- the record -------------------------------------------------------------------------------


@dataclass
class Look:
    """Where a stage's sign-off stands: its texts now, and who must still sign which."""

    texts: list[Text]
    by_group: dict[tuple[str, str], Text]
    missing: dict[str, list[Text]]  # organisation -> texts it has not signed
    voided: list[Signature]  # by this look
    told: list[str]  # who was emailed by this look

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())

    def waiting_line(self) -> str:
        """``Försäkringskassan (sv), Arbetsförmedlingen (sv, en)``."""
        return ", ".join(
            f"{org} ({', '.join(sorted({t.language for t in wanted}))})"
            for org, wanted in self.missing.items()
            if wanted
        )


def stored(session: Session, stage: Stage) -> list[Text]:
    """The stage's texts as last looked at (for a stage that has run: those it sent)."""
    return [
        Text(
            v.language,
            tuple(r for r in v.roles.split(",") if r) or ("",),
            v.subject,
            v.text,
            v.html,
            v.calendar,
            v.content_hash,
        )
        for v in queries.signoff_variants(session, stage_id=pk(stage), current=True)
    ]


def signed_drafts(session: Session, stage: Stage, drafts: list[Draft]) -> tuple[list[Draft], str]:
    """Of ``drafts`` made after the stage ran (a newcomer's catch-up), those that are a text
    every organisation signed, filled in; and why the others are not, if any are not."""
    current = stored(session, stage)
    unsigned = {
        t.content_hash for texts in missing(session, stage, current).values() for t in texts
    }
    by_group = {
        (t.language, role): t for t in current if t.content_hash not in unsigned for role in t.roles
    }
    kept, why = [], ""
    for d in drafts:
        text = by_group.get((d.recipient.language, d.recipient.role))
        reason = (
            f"nobody signed a text for {d.recipient.language}/{d.recipient.role}"
            if text is None
            else differs(text, d)
        )
        if reason:
            why = why or reason
        else:
            kept.append(d)
    return kept, why


def missing(session: Session, stage: Stage, current: Iterable[Text]) -> dict[str, list[Text]]:
    """Per organisation that must sign, the current texts it has no valid signature on."""
    signed = {
        (s.organisation, s.content_hash)
        for s in queries.signatures(session, stage_id=pk(stage), valid=True)
    }
    wanted = distinct(current)
    return {
        org: [t for t in wanted if (org, t.content_hash) not in signed] for org in stage.signoff
    }


def look(
    run: StageRun, kind: StageKind, *, notify: bool = True, reason: str = "the text changed"
) -> Look:
    """Render the stage's texts now and bring the record in step (in the run's transaction):
    store new texts, void signatures on texts no longer sent, ask who must still sign."""
    session, stage, now = run.session, run.stage, run.now
    by_group = texts(run, kind)
    current = distinct(by_group.values())
    now_hashes = [t.content_hash for t in current]
    for t in current:
        if queries.variant_by_hash(session, stage_id=pk(stage), content_hash=t.content_hash):
            continue
        queries.add_variant(
            session,
            values={
                "stage_id": pk(stage),
                "content_hash": t.content_hash,
                "language": t.language,
                "roles": ",".join(t.roles),
                "subject": t.subject,
                "text": t.text,
                "html": t.html,
                "calendar": t.calendar,
                "current": True,
                "first_seen_at": now,
            },
        )
    session.flush()
    queries.mark_current_variants(session, stage_id=pk(stage), hashes=now_hashes)
    voided = []
    for sig in queries.signatures(session, stage_id=pk(stage), valid=True):
        if sig.content_hash in now_hashes and sig.organisation in stage.signoff:
            continue
        why = (
            reason
            if sig.organisation in stage.signoff
            else f"{sig.organisation} no longer signs this stage"
        )
        sig.void_at, sig.void_reason = now, why
        session.add(sig)
        voided.append(sig)
        queries.audit(
            session,
            cycle_id=pk(run.cycle),
            action="signoff.void",
            stage_key=stage.key,
            detail=f"{sig.organisation}'s signature by {sig.account_email} on text "
            f"{sig.content_hash} is void: {why}",
        )
    # An approval rests on the signatures of the organisations that sign now (one that no
    # longer signs is void, but takes nothing away), and covers the texts it was given on.
    lost = any(v.organisation in stage.signoff for v in voided)
    other = sorted(now_hashes) != sorted(stage.approved_texts or [])
    if stage.approved_at is not None and (lost or other):
        stage.approved_at = None
        if stage.status == StageStatus.approved:
            stage.status = StageStatus.pending
        session.add(stage)
        why = "a signature it rested on is void" if lost else "the stage now sends other texts"
        queries.audit(
            session,
            cycle_id=pk(run.cycle),
            action="stage.approval_withdrawn",
            stage_key=stage.key,
            detail=f"the approval given in advance is withdrawn: {why}",
        )
    result = Look(current, by_group, missing(session, stage, current), voided, [])
    if notify:
        result.told = ask(session, run.settings, run.cycle, stage, result, now=now)
    return result


def signers_of(session: Session, organisation: str) -> list[str]:
    """The addresses of an organisation's signer accounts that are not disabled."""
    return [
        a.email
        for a in queries.list_accounts(session)
        if a.role == AccountRole.signer and a.organisation == organisation and not a.disabled
    ]


def hashes(wanted: Iterable[Text]) -> str:
    return ",".join(sorted(t.content_hash for t in wanted))


def ask(
    session: Session, settings: Settings, cycle: Cycle, stage: Stage, state: Look, *, now: datetime
) -> list[str]:
    """Email the signers of every organisation that must still sign, once per set of texts
    (a void signature is said in that email). Returns who was emailed."""
    told = []
    void = queries.signatures(session, stage_id=pk(stage), valid=False)
    for org, wanted in state.missing.items():
        if not wanted:
            continue
        key = hashes(wanted)
        last = queries.last_notice(
            session, stage_id=pk(stage), organisation=org, kinds=["waiting", "void", "reminder"]
        )
        if last is not None and last.content_hashes == key:
            continue  # told of exactly these texts
        # "Sign again" if a signature of theirs became void since they were last told (by
        # this look, or by one that emailed nobody: a page read, a dry run's real twin).
        again = any(
            v.organisation == org
            and v.void_at is not None
            and (last is None or v.void_at > last.at)
            for v in void
        )
        told += notify(
            session, settings, cycle, stage, org, "void" if again else "waiting", wanted, now=now
        )
    return told


def notify(
    session: Session,
    settings: Settings,
    cycle: Cycle,
    stage: Stage,
    organisation: str | None,
    kind: str,
    wanted: Iterable[Text],
    *,
    now: datetime,
    extra: str = "",
) -> list[str]:
    """Record a notice and queue its email: to the organisation's signers, or to the
    coordinator when ``organisation`` is None."""
    wanted = list(wanted)
    to = [settings.reflection_to] if organisation is None else signers_of(session, organisation)
    if not to:
        return []  # nobody to tell yet: asked once a signer account exists (the next tick)
    session.add(
        SignoffNotice(
            stage_id=pk(stage),
            organisation=organisation,
            kind=kind,
            content_hashes=hashes(wanted),
            at=now,
        )
    )
    subject, body = wording(settings, cycle, stage, organisation, kind, wanted, extra)
    rows: list[dict[str, Any]] = []
    for address in to:
        key = address.lower()
        rows.append(
            {
                "cycle_id": pk(cycle),
                "stage_id": pk(stage),
                "participant_id": None,
                "to_email": address,
                "to_key": key,
                "to_name": address,
                "category": "signoff",
                "content_language": settings.coordinator_language,
                "revision": queries.next_revision(session, stage_id=pk(stage), to_key=key)
                + len([r for r in rows if r["to_key"] == key]),
                "subject": subject,
                "text": body,
                "html": _html_page(settings.coordinator_language, subject, body),
                "ics": None,
                "ics_method": None,
                "attachment_name": None,
                "attachment": None,
                "status": MessageStatus.queued.value,
                "attempts": 0,
                "next_attempt_at": None,
                "claimed_at": None,
                "last_error": None,
                "message_id": None,
                "server_reply": None,
                "created_at": utcnow(),
                "sent_at": None,
            }
        )
    if rows:
        queries.insert_messages(session, rows=rows)
        session.flush()
    return to


def page_url(settings: Settings, cycle: Cycle, stage: Stage) -> str:
    return f"{settings.base}/workspace/cycles/{pk(cycle)}/stages/{stage.key}/signoff"


_WORDS = {
    "waiting": (
        N_("Waiting for your signature: {stage} of {cycle}"),
        N_(
            "{org} is asked to sign what {stage} of {cycle} sends ({languages}), "
            "due {due}."
        ),
    ),
    "void": (
        N_("Please sign again: {stage} of {cycle}"),
        N_(
            "The text of {stage} of {cycle} changed, so {org}'s signature on it is "
            "void. Please read the new text ({languages}) and sign again; it is due"
            " {due}."
        ),
    ),
    "reminder": (
        N_("Reminder, waiting for your signature: {stage} of {cycle}"),
        N_(
            "{org} has not yet signed what {stage} of {cycle} sends ({languages}); "
            "it is due {due}."
        ),
    ),
    "overdue": (
        N_("Not sent, waiting for sign-off: {stage} of {cycle}"),
        N_(
            "{stage} of {cycle} was due {due} and is not sent: it waits for sign-"
            "off from {waiting}. The stages after it wait too."
        ),
    ),
    "refused": (
        N_("Not sent: {stage} of {cycle}"),
        N_("{stage} of {cycle} is not sent: {waiting}"),
    ),
    "change": (
        N_("Change requested: {stage} of {cycle}"),
        N_("{who} asks for a change to {stage} of {cycle} (due {due})."),
    ),
    "read": N_("Read and sign it here: {url}"),
    "comment": N_("Their comment:"),
}


def wording(
    settings: Settings,
    cycle: Cycle,
    stage: Stage,
    organisation: str | None,
    kind: str,
    wanted: list[Text],
    extra: str,
) -> tuple[str, str]:
    """The subject and text of a sign-off email, in the coordinator's language."""
    words: dict[str, Any] = i18n.translated(_WORDS, settings.coordinator_language)
    due = f"{stage.due_at.astimezone(zone(cycle.timezone)):%Y-%m-%d %H:%M}"
    values = {
        "stage": stage.key,
        "cycle": cycle.name,
        "org": organisation or "",
        "languages": ", ".join(sorted({t.language for t in wanted})) or "-",
        "due": due,
        "waiting": extra,
        "who": extra,
    }
    subject, first = words[kind]
    lines = [first.format(**values), "", words["read"].format(url=page_url(settings, cycle, stage))]
    if kind == "change" and "\n" in extra:
        who, comment = extra.split("\n", 1)
        lines = [
            first.format(**{**values, "who": who}),
            "",
            words["comment"],
            "",
            comment,
            "",
            lines[-1],
        ]
    return subject.format(**values), "\n".join(lines) + "\n"


def _html_page(language: str, subject: str, body: str) -> str:
    paragraphs = "".join(
        f"<p>{escapeHtml(p).replace(chr(10), '<br>')}</p>" for p in body.strip().split("\n\n")
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{language}" dir="{i18n.direction(language)}">\n'
        f'<head><meta charset="utf-8"><title>{escapeHtml(subject)}</title></head>\n'
        f"<body>{paragraphs}</body>\n</html>\n"
    )


def remind_due(
    session: Session, settings: Settings, cycle: Cycle, stage: Stage, state: Look, *, now: datetime
) -> list[str]:
    """Remind the organisations that have not signed, once per set of texts, when the last
    email to them is older than the reminder setting."""
    after = timedelta(hours=settings.signoff_remind_after_hours)
    told = []
    for org, wanted in state.missing.items():
        if not wanted:
            continue
        key = hashes(wanted)
        last = queries.last_notice(
            session, stage_id=pk(stage), organisation=org, kinds=["waiting", "void", "reminder"]
        )
        if last is None or last.content_hashes != key:
            continue  # ``ask`` tells them first
        if last.kind == "reminder" or now - last.at < after:
            continue
        told += notify(session, settings, cycle, stage, org, "reminder", wanted, now=now)
    return told
