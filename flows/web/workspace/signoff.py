"""A stage's sign-off page: the texts an organisation signs, side by side by language, who
signed which and when, what is missing, and the thread of comments; a signer of an
organisation the stage names signs there, or asks for a change.

Anyone signed in reads it but a signer of an organisation the stage does not name (they have
nothing to sign, and the texts are not theirs to read); only signers sign, and the
coordinator answers in the thread. Everything is done by flows/cycles/signoff.py, as
``samverkan signoff …`` does it: a signature carries the hashes of the texts the signer read,
so a text that changed meanwhile is never signed unread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flows.cycles.signoff import SignoffStatus, request_change, sign, signoff_status
from flows.stages.signoff import MARKS, Text, short
from flows.web.workspace.core import (
    MAX_ID,
    AnyoneSignedIn,
    SignerOrMore,
    Who,
    checked_form,
    engine_of,
    field,
    language_label,
    page,
    settings_of,
    url,
)
from messaging import i18n, links
from store.errors import NotFound, PermissionDenied, SamverkanError, StateError

router = APIRouter()

# The fictitious person shown where each recipient's own values go.
SAMPLE = {
    "name": "Alex Exempel",
    "first_name": "Alex",
    "email": "alex.exempel@example.org",
    "organisation": "Exempelkommunen",
}
FIELD_LABELS = {
    "name": "name",
    "first_name": "first name",
    "email": "email address",
    "organisation": "organisation",
}
DONE = {
    "signed": "Signed. Your organisation's signature is recorded on every text shown.",
    "change": "Your request for a change is kept in the thread below; the coordinator is told.",
    "comment": "Your comment is kept in the thread below.",
}
_TAG = re.compile(r"(<[^>]*>)")


def sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def marked(part: str) -> Markup:
    """Plain text with each personal marker shown as the sample value, highlighted, and
    named for screen readers."""
    shown = str(escape(links.hide(part)))
    for name, mark in MARKS.items():
        shown = shown.replace(
            mark,
            f'<mark>{escape(SAMPLE[name])}<span class="vh"> (personal: '
            f"{FIELD_LABELS[name]})</span></mark>",
        )
    return Markup(shown)  # escaped above: only our own tags are added


def sample_html(html: str) -> str:
    """The HTML part with the sample values: highlighted in the text, as they are inside tags
    (an address in a link, say)."""
    pieces = []
    for piece in _TAG.split(links.hide(html)):
        tag = piece.startswith("<")
        for name, mark in MARKS.items():
            value = str(escape(SAMPLE[name]))
            piece = piece.replace(mark, value if tag else f"<mark>{value}</mark>")
        pieces.append(piece)
    return "".join(pieces)


@dataclass
class Column:
    """The texts of one language (more than one when roles get different words)."""

    language: str
    texts: list[Text]

    @property
    def label(self) -> str:
        return language_label(self.language)


def columns(texts: list[Text]) -> list[Column]:
    found: dict[str, Column] = {}
    for t in texts:
        found.setdefault(t.language, Column(t.language, [])).texts.append(t)
    return list(found.values())


def may_read(who: Who, status: SignoffStatus) -> bool:
    return who.role != "signer" or who.organisation in status.required


def can_sign(who: Who, status: SignoffStatus) -> bool:
    if who.role != "signer" or status.status not in ("pending", "approved", "held"):
        return False
    return any(o.organisation == who.organisation and o.missing for o in status.organisations)


def _status(request: Request, cycle_id: int, key: str) -> SignoffStatus:
    if not 0 < cycle_id <= MAX_ID:
        raise HTTPException(404)
    try:
        return signoff_status(engine_of(request), settings_of(request), cycle_id=cycle_id, key=key)
    except NotFound:
        raise HTTPException(404) from None


def refused(request: Request, who: Who, reason: str, *, status: int) -> HTMLResponse:
    return page(
        request,
        who,
        "signoff_refused.html",
        status=status,
        title="Sign-off",
        reason=sentence(reason),
    )


def signoff_page(
    request: Request,
    who: Who,
    cycle_id: int,
    key: str,
    *,
    message: str = "",
    error: str = "",
    comment: str = "",
    status: int = 200,
) -> HTMLResponse:
    try:
        state = _status(request, cycle_id, key)
    except StateError as exc:  # the stage needs no sign-off
        return refused(request, who, str(exc), status=404)
    except NotFound:
        raise
    except SamverkanError as exc:  # its email does not render: the reason, in one line
        return refused(request, who, f"{key} cannot be shown: {exc}", status=422)
    if not may_read(who, state):
        return refused(
            request,
            who,
            f"You sign for {who.organisation}, which is not asked to sign {key} "
            f"(asked: {', '.join(state.required)})",
            status=403,
        )
    zone = state.due.tzinfo

    def at(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""

    languages = {t.content_hash: t.language for t in state.texts}
    void = [s for s in state.signatures if s.void_at is not None]
    mine = next((o for o in state.organisations if o.organisation == who.organisation), None)
    return page(
        request,
        who,
        "signoff.html",
        status=status,
        title=f"Sign-off of {key}",
        section="overview" if who.is_coordinator else "drafts",
        state=state,
        columns=columns(state.texts),
        marked=marked,
        sample_html=sample_html,
        sample=SAMPLE,
        labels=FIELD_LABELS,
        language_name=language_label,
        direction=i18n.direction,
        languages=languages,
        short=short,
        at=at,
        void=void,
        mine=mine,
        can_sign=can_sign(who, state),
        can_comment=who.is_coordinator or (who.role == "signer" and mine is not None),
        message=message,
        error=error,
        comment=comment,
        zone=str(zone),
    )


@router.get("/cycles/{cycle_id}/stages/{key}/signoff", response_class=HTMLResponse)
def signoff(
    request: Request, cycle_id: int, key: str, who: AnyoneSignedIn, done: str = ""
) -> HTMLResponse:
    return signoff_page(request, who, cycle_id, key, message=DONE.get(done, ""))


def _back(cycle_id: int, key: str, done: str) -> RedirectResponse:
    return RedirectResponse(
        url(f"/cycles/{cycle_id}/stages/{key}/signoff", done=done), status_code=303
    )


async def _act(
    request: Request,
    who: Who,
    cycle_id: int,
    key: str,
    act: Callable[..., str],
    *,
    done: str,
    **given: Any,
) -> Response:
    """Call ``act`` (``sign`` or ``request_change``) for the signed-in account; back to the
    page with a message, or the page again with the one-line reason it was refused."""
    if not 0 < cycle_id <= MAX_ID:
        raise HTTPException(404)
    try:
        await run_in_threadpool(
            lambda: act(
                engine_of(request),
                settings_of(request),
                cycle_id=cycle_id,
                key=key,
                email=who.email,
                **given,
            )
        )
    except NotFound:
        raise HTTPException(404) from None
    except PermissionDenied as exc:
        return refused(request, who, str(exc), status=403)
    except SamverkanError as exc:
        # The application names its CLI option; the page has a field.
        error = sentence(str(exc).replace("--comment", "the comment"))
        return await run_in_threadpool(
            lambda: signoff_page(
                request,
                who,
                cycle_id,
                key,
                error=error,
                comment=given.get("comment", ""),
                status=422,
            )
        )
    return _back(cycle_id, key, done)


@router.post("/cycles/{cycle_id}/stages/{key}/signoff/sign", response_model=None)
async def sign_texts(request: Request, cycle_id: int, key: str, who: SignerOrMore) -> Response:
    form = await checked_form(request, who)
    seen = [v.strip() for v in form.getlist("seen") if isinstance(v, str)]
    return await _act(request, who, cycle_id, key, sign, done="signed", seen=seen)


@router.post("/cycles/{cycle_id}/stages/{key}/signoff/change", response_model=None)
async def ask_for_change(request: Request, cycle_id: int, key: str, who: SignerOrMore) -> Response:
    form = await checked_form(request, who)
    comment = field(form, "comment")
    done = "comment" if who.is_coordinator else "change"
    return await _act(request, who, cycle_id, key, request_change, done=done, comment=comment)
