"""The start page: for a coordinator the overview of every cycle; others go to their pages.

Each cycle's status, what is due next and when (in the cycle's zone), what waits for the
coordinator (drafts to approve, failed stages, failed and uncertain messages) and how many
have answered its follow-ups; every count says what it counts and links to the rows behind
it. The figures come from a few grouped queries over all cycles (flows/cycles/glance.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flows.cycles.glance import cycles_at_a_glance
from flows.web.workspace.core import AnyoneSignedIn, engine_of, local_time, page, settings_of, url

router = APIRouter()

STATUS = {
    "draft": "Draft",
    "running": "Running",
    "paused": "Paused",
    "completed": "Completed",
    "cancelled": "Cancelled",
}


def counted(n: int, one: str, many: str) -> str:
    """``counted(2, "message failed", "messages failed")`` -> "2 messages failed"."""
    return f"{n} {one if n == 1 else many}"


@router.get("/", response_model=None)
async def home(request: Request, who: AnyoneSignedIn) -> Response:
    if not who.is_coordinator:
        # A signer starts at what waits for their organisation's reading, a viewer at reports.
        home = "/drafts" if who.role == "signer" else "/reports"
        return RedirectResponse(url(home), status_code=303)
    cycles = await run_in_threadpool(cycles_at_a_glance, engine_of(request))
    waiting = sum(1 for c in cycles if c.waits)
    return page(
        request,
        who,
        "overview.html",
        title="Overview",
        section="overview",
        cycles=cycles,
        waiting=waiting,
        status_label=STATUS,
        counted=counted,
        local_time=local_time,
        min_group=settings_of(request).min_group,
    )
