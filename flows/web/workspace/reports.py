"""Reports and indicators, for anyone signed in: the list of cycles, each cycle's reflection
report (what ``samverkan report`` writes, shown inside the page, with downloads) and its
indicators (what ``samverkan indicators --cycle ID`` exports, with the same small-group
protection: a hidden value is never on the page, nor the number of people behind it).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flows.reporting import indicators as ind
from flows.reporting.report import build_report
from flows.stages.base import role_label
from flows.web.workspace.core import (
    MAX_ID,
    AnyoneSignedIn,
    engine_of,
    local_time,
    page,
    settings_of,
)
from store import queries
from store.errors import NotFound
from store.models import Cycle

router = APIRouter()

# The columns of the indicators table, and what each counts.
COLUMNS = (
    ("asked", "Asked", "People sent the follow-up questions."),
    ("answered", "Answered", "People who answered at least one of them."),
    ("response_rate", "Response rate", "Answered as a share of asked."),
    ("scale_mean", "Mean (0–10)", "The mean of the answers on the 0–10 scale."),
    ("scale_median", "Median", "The middle answer on the scale."),
    (
        "scale_change",
        "Change",
        "How far the mean moved since the same group's previous cycle (+ is better).",
    ),
)
LEVELS = (
    ("all", "Everyone"),
    ("role", "By role"),
    ("org", "By organisation"),
    ("both", "By organisation and role"),
)


def _cycle(request: Request, cycle_id: int) -> Cycle:
    if not 0 < cycle_id <= MAX_ID:  # no such row (and PostgreSQL refuses the number)
        raise HTTPException(404)
    with Session(engine_of(request)) as session:
        try:
            return queries.get_cycle(session, cycle_id=cycle_id)
        except NotFound:
            raise HTTPException(404) from None


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, who: AnyoneSignedIn) -> HTMLResponse:
    with Session(engine_of(request)) as session:
        cycles = queries.list_cycles(session)
    return page(
        request,
        who,
        "reports.html",
        title="Reports",
        section="reports",
        cycles=cycles,
        local_time=local_time,
    )


# The report -------------------------------------------------------------------------------

_LANG = re.compile(r'<html lang="([A-Za-z0-9-]{2,35})" dir="(ltr|rtl)">')
_MAIN = re.compile(r"<main>(.*)</main>", re.DOTALL)


def report_parts(document: str) -> tuple[str, str, Markup]:
    """The language, direction and content of a report's HTML page, to show within another
    page.

    The report escapes everything that is not its own (flows/reporting/report.py), so its
    markup is taken as it is."""
    lang = _LANG.search(document)
    main = _MAIN.search(document)
    if main is None:  # never, for a report samverkan wrote
        raise ValueError("not a report")
    if lang is None:
        return "en", "ltr", Markup(main.group(1))
    return lang.group(1), lang.group(2), Markup(main.group(1))


@router.get("/cycles/{cycle_id:int}/report", response_class=HTMLResponse)
async def report_page(request: Request, who: AnyoneSignedIn, cycle_id: int) -> HTMLResponse:
    cycle = await run_in_threadpool(_cycle, request, cycle_id)
    document = await run_in_threadpool(
        build_report, engine_of(request), settings_of(request), cycle_id, "html"
    )
    lang, direction, body = report_parts(document)
    return page(
        request,
        who,
        "report.html",
        title=f"Report: {cycle.name}",
        section="reports",
        cycle=cycle,
        lang=lang,
        direction=direction,
        body=body,
    )


def _download(content: str, media_type: str, filename: str) -> Response:
    return Response(
        content.encode("utf-8"),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/cycles/{cycle_id:int}/report.{fmt}", response_model=None)
async def report_download(
    request: Request, who: AnyoneSignedIn, cycle_id: int, fmt: str
) -> Response:
    if fmt not in ("html", "md"):
        raise HTTPException(404)
    await run_in_threadpool(_cycle, request, cycle_id)
    text = await run_in_threadpool(
        build_report, engine_of(request), settings_of(request), cycle_id, fmt
    )
    media = "text/html; charset=utf-8" if fmt == "html" else "text/markdown; charset=utf-8"
    return _download(text, media, f"reflection-cycle-{cycle_id}.{fmt}")


# The indicators ---------------------------------------------------------------------------


@dataclass
class GroupRow:
    """One group's figures as shown: text per indicator; "not shown" when suppressed."""

    organisation: str
    role: str
    cells: dict[str, str] = field(default_factory=dict)
    hidden: bool = False


def _level(row: ind.Row) -> str:
    if row.organisation == ind.ALL:
        return "all" if row.role == ind.ALL else "role"
    return "org" if row.role == ind.ALL else "both"


def _shown(row: ind.Row) -> str:
    if row.suppressed or row.value is None:  # a suppressed row carries no value at all
        return "not shown"
    if row.indicator == "response_rate":
        return f"{row.value:.0%}"
    if row.indicator == "scale_change":
        return f"{row.value:+.1f}"
    if row.indicator in ("scale_mean", "scale_median"):
        return f"{row.value:.1f} (n = {row.n})"
    return f"{row.value:g}"


def indicator_tables(rows: list[ind.Row]) -> dict[str, list[GroupRow]]:
    """The export's rows of one cycle as a table per level (everyone, role, organisation,
    organisation × role), one row per group."""
    tables: dict[str, dict[tuple[str, str], GroupRow]] = {level: {} for level, _ in LEVELS}
    for row in rows:
        key = (row.organisation, row.role)
        group = tables[_level(row)].setdefault(
            key,
            GroupRow(
                "All organisations" if row.organisation == ind.ALL else row.organisation,
                "All roles" if row.role == ind.ALL else role_label(row.role, "en").capitalize(),
            ),
        )
        group.cells[row.indicator] = _shown(row)
        group.hidden = group.hidden or row.suppressed
    return {level: list(groups.values()) for level, groups in tables.items()}


@router.get("/cycles/{cycle_id:int}/indicators", response_class=HTMLResponse)
async def indicators_page(request: Request, who: AnyoneSignedIn, cycle_id: int) -> HTMLResponse:
    cycle = await run_in_threadpool(_cycle, request, cycle_id)
    settings = settings_of(request)
    figures = await run_in_threadpool(
        functools.partial(
            ind.compute, engine_of(request), cycle_ids=[cycle_id], min_group=settings.min_group
        )
    )
    rows = figures.rows()
    return page(
        request,
        who,
        "indicators.html",
        title=f"Indicators: {cycle.name}",
        section="reports",
        cycle=cycle,
        tables=indicator_tables(rows),
        levels=LEVELS,
        columns=COLUMNS,
        any_hidden=any(r.suppressed for r in rows),
        min_group=settings.min_group,
    )


@router.get("/cycles/{cycle_id:int}/indicators.{fmt}", response_model=None)
async def indicators_download(
    request: Request, who: AnyoneSignedIn, cycle_id: int, fmt: str
) -> Response:
    if fmt not in ("csv", "json") or not 0 < cycle_id <= MAX_ID:
        raise HTTPException(404)
    settings = settings_of(request)
    try:
        text = await run_in_threadpool(
            functools.partial(
                ind.export,
                engine_of(request),
                cycle_ids=[cycle_id],
                min_group=settings.min_group,
                fmt=fmt,
            )
        )
    except NotFound:
        raise HTTPException(404) from None
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return _download(text, media, f"indicators-cycle-{cycle_id}.{fmt}")
