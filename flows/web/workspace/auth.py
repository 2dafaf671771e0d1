"""Signing in and out, and changing one's own password."""

from __future__ import annotations

import functools
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flows.people import accounts
from flows.web.workspace.core import (
    COOKIE,
    FORM,
    PREFIX,
    AnyoneSignedIn,
    BadForm,
    checked_form,
    encoding,
    engine_of,
    field,
    optional_who,
    page,
    same_token,
    settings_of,
)
from store.errors import InvalidInput

router = APIRouter()
THROTTLED = (
    "Too many attempts with a wrong password. Wait 15 minutes and try again, or ask a "
    "coordinator to set a new password."
)


def safe_back(value: str | None) -> str:
    """Where to go after login: only a workspace page of this site (no open redirect)."""
    if value and value.startswith(PREFIX + "/") and "\\" not in value and "//" not in value:
        return value
    return PREFIX + "/"


def client_address(request: Request) -> str:
    # Behind a proxy, run uvicorn with --proxy-headers so that this is the browser's address.
    return request.client.host if request.client else "unknown"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(accounts.LONGEST.total_seconds()),
        path=PREFIX,  # never sent to the participants' pages
        httponly=True,
        samesite="lax",
        secure=settings_of(request).base.startswith("https://"),
    )


LOGIN_COOKIE = "samverkan_login"


def login_form(
    request: Request, *, status: int = 200, back: str, error: str | None = None, email: str = ""
) -> HTMLResponse:
    """The login page. Before there is a session its form is protected by a double-submit
    token: a random value in a cookie that the form must repeat, which another site can
    neither read nor set (against logging someone in to an account of the attacker's)."""
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        None,
        "login.html",
        status=status,
        title="Sign in",
        back=back,
        error=error,
        email=email,
        login_csrf=token,
        changed=request.query_params.get("changed") == "1",
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path=PREFIX + "/login",
        httponly=True,
        samesite="strict",
        secure=settings_of(request).base.startswith("https://"),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, back: str | None = None) -> HTMLResponse:
    return login_form(request, back=safe_back(back))


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    # A successful login always starts a new session, which defeats session fixation.
    if encoding(request) != FORM:
        raise BadForm
    form = await request.form()
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
        raise BadForm
    email, password = field(form, "email"), form.get("password")
    back = safe_back(field(form, "back"))
    if not isinstance(password, str):
        password = ""
    result = await run_in_threadpool(
        accounts.log_in,
        engine_of(request),
        email=email,
        password=password,
        address=client_address(request),
    )
    if result.outcome == "ok":
        assert result.token is not None
        response = RedirectResponse(back, status_code=303)
        set_session_cookie(request, response, result.token)
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/login")
        return response
    if result.outcome == "disabled":
        return page(request, None, "disabled.html", status=403, title="Account disabled")
    error = {
        "refused": "The email address or the password is not right.",
        "throttled": THROTTLED,
    }[result.outcome]
    status = 429 if result.outcome == "throttled" else 401
    return login_form(request, status=status, back=back, error=error, email=email)


@router.post("/logout", response_model=None)
async def logout(request: Request, who: AnyoneSignedIn) -> Response:
    await checked_form(request, who)
    await run_in_threadpool(
        functools.partial(
            accounts.log_out,
            engine_of(request),
            session_id=who.signed.session_id,
            email=who.email,
        )
    )
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, who: AnyoneSignedIn) -> HTMLResponse:
    return page(request, who, "account.html", title="Your account", error=None, done=False)


@router.post("/account", response_model=None)
async def change_password(request: Request, who: AnyoneSignedIn) -> Response:
    form = await checked_form(request, who)
    current, new, again = (form.get(k) for k in ("current", "new", "again"))
    if not all(isinstance(v, str) for v in (current, new, again)):
        current = new = again = ""
    engine = engine_of(request)
    error = None
    status = 422
    if new != again:
        error = "The two new passwords differ."
    else:
        # The current password is checked as a login is: throttled, in a worker thread.
        checked = await run_in_threadpool(
            functools.partial(
                accounts.check_password_of,
                engine,
                email=who.email,
                password=str(current),
                address=client_address(request),
            )
        )
        if checked == "throttled":
            error, status = THROTTLED, 429
        elif checked != "ok":
            error = "Your current password is not right."
        else:
            try:
                await run_in_threadpool(
                    functools.partial(
                        accounts.set_password, engine, email=who.email, password=str(new)
                    )
                )
            except InvalidInput as exc:
                error = str(exc).capitalize() + "."
    if error:
        return page(
            request,
            who,
            "account.html",
            status=status,
            title="Your account",
            error=error,
            done=False,
        )
    # Every session ended with the old password, this one too: sign in again.
    response = RedirectResponse(PREFIX + "/login?changed=1", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/disabled", response_class=HTMLResponse)
def disabled_page(request: Request) -> HTMLResponse:
    return page(request, optional_who(request), "disabled.html", title="Account disabled")
