"""What every workspace page shares: who is signed in, what their role lets them do, forms
with a CSRF token, and rendering.

A route says who may use it with one of the dependencies ``coordinator``, ``signer_or_more``
or ``anyone_signed_in``: an anonymous request is sent to the login page (303), a signed-in
account of another role gets the 403 page. Every POST reads its form through ``checked_form``,
which refuses (403, nothing changed) a form whose CSRF token is not the session's. While a
route runs, the audit log names the signed-in account as the actor.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from flows.people.accounts import SignedIn, signed_in
from flows.settings import Settings
from messaging import i18n
from store import queries
from store.models import AccountRole

HERE = Path(__file__).parent
PREFIX = "/workspace"
# The languages a coordinator can give a person, named in the workspace's English.
LANGUAGES = [(tag, i18n.language_name(tag)) for tag in i18n.offered()]
LANGUAGE_NAMES = dict(LANGUAGES)


def language_label(code: str | None) -> str:
    """A language as the workspace names it: 'Finnish', or the tag samverkan has no name for."""
    return LANGUAGE_NAMES.get(code or "", code or "language unknown")


COOKIE = "samverkan_session"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# Ids are the store's integers (32 bits on PostgreSQL, which refuses a larger number): a page
# asked for a larger one shows "not found", as the CLI says "no cycle with id N".
MAX_ID = 2**31 - 1

pages = Jinja2Templates(directory=HERE / "templates")


class NeedLogin(Exception):
    """No open session: go to the login page, and come back here after."""

    def __init__(self, back: str) -> None:
        self.back = back


class Forbidden(Exception):
    """Signed in, but this account's role may not do this."""


class BadForm(Exception):
    """A POST without this session's CSRF token (or not a form at all)."""


@dataclass
class Who:
    """The signed-in account of a request."""

    signed: SignedIn

    @property
    def email(self) -> str:
        return self.signed.account.email

    @property
    def role(self) -> str:
        return str(self.signed.account.role)

    @property
    def organisation(self) -> str | None:
        return self.signed.account.organisation

    @property
    def csrf(self) -> str:
        return self.signed.csrf

    @property
    def is_coordinator(self) -> bool:
        return self.role == AccountRole.coordinator


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine()
    return engine


def _who(request: Request) -> Who | None:
    found = signed_in(engine_of(request), request.cookies.get(COOKIE))
    if found is None or found.account.disabled:
        return None
    return Who(found)


def _back(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def _needs(*roles: AccountRole) -> Callable[[Request], AsyncIterator[Who]]:
    # An async dependency runs in the request's own context, so the actor it sets is seen by
    # the route (a plain function route runs in a thread with a copy of that context).
    async def dependency(request: Request) -> AsyncIterator[Who]:
        who = await run_in_threadpool(_who, request)
        if who is None:
            raise NeedLogin(_back(request) if request.method == "GET" else PREFIX + "/")
        if who.role not in roles:
            raise Forbidden
        with queries.acting_as(who.email):
            yield who

    return dependency


Coordinator = Annotated[Who, Depends(_needs(AccountRole.coordinator))]
SignerOrMore = Annotated[Who, Depends(_needs(AccountRole.coordinator, AccountRole.signer))]
AnyoneSignedIn = Annotated[
    Who, Depends(_needs(AccountRole.coordinator, AccountRole.signer, AccountRole.viewer))
]


def optional_who(request: Request) -> Who | None:
    return _who(request)


def encoding(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def checked_form(request: Request, who: Who, *, files: bool = False) -> FormData:
    """The submitted form, if it carries this session's CSRF token; else BadForm."""
    allowed = (FORM, MULTIPART) if files else (FORM,)
    if encoding(request) not in allowed:
        raise BadForm
    form = await request.form()
    if not same_token(form.get("csrf"), who.csrf):
        raise BadForm
    return form


def number(text: str, default: int | None = None) -> int | None:
    """A whole number of up to nine ASCII digits ("²" and "٣" are digits to str.isdigit, and
    int() refuses a string of thousands), else ``default``."""
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else default


def same_token(given: object, expected: str) -> bool:
    """Whether a submitted token is the expected one, in constant time (compared as bytes:
    compare_digest refuses text that is not ASCII)."""
    if not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def field(form: FormData, name: str, default: str = "") -> str:
    """A text field of a form ("" when missing or not text), without surrounding space."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def url(path: str, **query: Any) -> str:
    """A workspace address: ``url("/cycles/1", tab="outbox")``."""
    given = "&".join(f"{k}={quote(str(v))}" for k, v in query.items() if v not in (None, ""))
    return PREFIX + path + (f"?{given}" if given else "")


def local_time(value: datetime | None, zone: str) -> str:
    """A stored time as the coordinator reads it: '2027-02-10 09:00' in the cycle's zone."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def page(
    request: Request,
    who: Who | None,
    name: str,
    *,
    status: int = 200,
    title: str = "",
    section: str = "",
    **context: Any,
) -> HTMLResponse:
    """Render a workspace page: every page gets the account, its CSRF token and the menu."""
    return pages.TemplateResponse(
        request,
        name,
        {
            "who": who,
            "csrf": who.csrf if who else "",
            "title": title,
            "section": section,
            "url": url,
            "prefix": PREFIX,
            **context,
        },
        status_code=status,
    )
