"""The coordinator's workspace: the web app of accounts, beside the participants' pages.

``samverkan serve`` mounts it at ``/workspace``; its session cookie has that path, so the
participants' pages (``/a/``, ``/r/``, ``/u/``) never receive one. One module per group of
pages, each an ``APIRouter``; ``core`` holds what they share (who is signed in, roles, forms
with CSRF tokens, rendering). The pages call the same functions of the application as the CLI
does, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows.settings import Settings
from flows.web.workspace import (
    auth,
    catalogue,
    core,
    cycle,
    network,
    overview,
    reports,
    signoff,
)

# The page groups, in the order of the menu. Each is added to the app with include_router.
ROUTERS = [
    auth.router,
    overview.router,
    network.router,
    catalogue.router,
    cycle.router,
    signoff.router,
    reports.router,
]


def create_workspace(settings: Settings, engine: Callable[[], Engine]) -> FastAPI:
    """The workspace app; ``engine`` returns the store's engine (opened on first use)."""
    app = FastAPI(title="samverkan workspace", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[..., object]) -> Response:
        response: Response = await call_next(request)  # type: ignore[misc]
        # The drafts page shows an email's HTML in a sandboxed frame (srcdoc): no scripts,
        # no forms, nothing fetched.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    @app.exception_handler(core.NeedLogin)
    async def need_login(request: Request, exc: core.NeedLogin) -> Response:
        return RedirectResponse(
            f"{core.PREFIX}/login?back={quote(exc.back, safe='/')}", status_code=303
        )

    @app.exception_handler(core.Forbidden)
    async def forbidden(request: Request, exc: core.Forbidden) -> Response:
        return core.page(
            request,
            core.optional_who(request),
            "forbidden.html",
            status=403,
            title="Not for your role",
        )

    @app.exception_handler(core.BadForm)
    async def bad_form(request: Request, exc: core.BadForm) -> Response:
        return core.page(
            request, core.optional_who(request), "bad_form.html", status=403, title="Form expired"
        )

    @app.exception_handler(RequestValidationError)
    async def not_an_address(request: Request, exc: RequestValidationError) -> Response:
        # A path that does not parse (/cycles/abc) names nothing: the same page as unknown ids.
        return core.page(
            request, core.optional_who(request), "not_found.html", status=404, title="Not found"
        )

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        return core.page(
            request,
            core.optional_who(request),
            "not_found.html",
            status=exc.status_code,
            title="Not found",
        )

    @app.get("/static/workspace.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(STYLE, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    for router in ROUTERS:
        app.include_router(router)
    return app


STYLE = (core.HERE / "static" / "workspace.css").read_text(encoding="utf-8")
