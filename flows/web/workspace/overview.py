"""The start page: for a coordinator the overview of every cycle; others go to their pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from flows.web.workspace.core import AnyoneSignedIn, engine_of, page, url
from store import queries

router = APIRouter()


@router.get("/", response_model=None)
def home(request: Request, who: AnyoneSignedIn) -> Response:
    if not who.is_coordinator:
        return RedirectResponse(url("/reports"), status_code=303)
    with Session(engine_of(request)) as session:
        cycles = queries.list_cycles(session)
    return page(request, who, "overview.html", title="Overview", section="overview", cycles=cycles)
