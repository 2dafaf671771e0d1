"""The process templates (what ``samverkan templates list`` and ``validate`` say of each) and
launching a cycle from one (what ``samverkan cycle launch`` does), for the coordinator.

A launch goes through ``launch_cycle`` as the CLI's does, with its validation; an error is
shown beside the field it concerns when its message names one (a variable, the name, the
start, the zone, the audience, the steering group), otherwise above the form, and what was
typed is kept.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from flows.cycles.launch import complete_languages, launch_cycle
from flows.templates import ProcessTemplate, StageSpec, catalogue, list_templates, load_template
from flows.templates.validation import validate_template
from flows.web.workspace.core import (
    Coordinator,
    Who,
    checked_form,
    engine_of,
    field,
    page,
    settings_of,
    url,
)
from messaging import i18n
from store.errors import SamverkanError

router = APIRouter()

KIND_LABELS = {
    "email": "Email",
    "meeting": "Meeting (calendar invite)",
    "followup": "Follow-up questions",
    "reflection": "Reflection report",
}


def timing(stage: StageSpec) -> str:
    """When a template's stage runs, in words."""
    if stage.at == "start":
        return "When the cycle starts"
    if stage.at:
        return f"At {stage.at}"
    side = "after" if stage.after else "before"
    if stage.offset in ("0", ""):
        return f"With {stage.anchor}" if side == "after" else f"Just before {stage.anchor}"
    return f"{stage.offset} {side} {stage.anchor}"


def label(name: str) -> str:
    """A variable's name as a form label: ``workshop_at`` -> "Workshop at"."""
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or name


def _known(request: Request, name: str) -> None:
    # Only a template of the templates folder, by its name: never a path.
    if name not in list_templates(settings_of(request).templates_dir):
        raise HTTPException(404)


@functools.cache
def time_zones() -> list[str]:
    return sorted(
        z for z in zoneinfo.available_timezones() if not z.startswith(("posix/", "right/"))
    )


# Templates ---------------------------------------------------------------------------------


@router.get("/templates", response_class=HTMLResponse)
def templates_page(request: Request, who: Coordinator) -> HTMLResponse:
    settings = settings_of(request)
    return page(
        request,
        who,
        "templates.html",
        title="Templates",
        section="templates",
        listed=catalogue(settings.templates_dir),
    )


@router.get("/templates/{name}", response_class=HTMLResponse)
def template_page(request: Request, who: Coordinator, name: str) -> HTMLResponse:
    _known(request, name)
    settings = settings_of(request)
    template: ProcessTemplate | None = None
    problem = report = None
    try:
        template = load_template(settings.templates_dir / name)
        # What `samverkan templates validate` says: every email rendered for sample people.
        report = validate_template(settings, name)
    except SamverkanError as exc:
        problem = str(exc)
    return page(
        request,
        who,
        "template.html",
        title=f"Template {name}",
        section="templates",
        template_name=name,
        t=template,
        problem=problem,
        report=report,
        timing=timing,
        kinds=KIND_LABELS,
        used_questions=_used_questions(template) if template else [],
    )


def _used_questions(t: ProcessTemplate) -> list[tuple[str, Any]]:
    """(stage key, question) of every question a stage asks, in plan order."""
    return [(s.key, t.questions[q]) for s in t.spec.stages for q in s.questions]


# Launch ------------------------------------------------------------------------------------


@dataclass
class LaunchForm:
    """What the launch form shows: the typed values, and the errors by field."""

    values: dict[str, str]
    errors: dict[str, str]
    problem: str | None = None  # an error that concerns no one field


def _blank(t: ProcessTemplate, zone: str) -> LaunchForm:
    values = {
        "name": "",
        "start": "",
        "timezone": zone,
        "audience": "",
        "steering": "",
        "fallback_language": "",
    }
    for var, spec in t.spec.variables.items():
        values[f"var-{var}"] = spec.default or ""
    return LaunchForm(values, {})


def _launch_page(
    request: Request, who: Who, t: ProcessTemplate, form: LaunchForm, status: int = 200
) -> HTMLResponse:
    return page(
        request,
        who,
        "launch.html",
        status=status,
        title=f"Launch a cycle from {t.name}",
        section="templates",
        t=t,
        form=form,
        label=label,
        zones=time_zones(),
        fallbacks=[(tag, i18n.language_name(tag)) for tag in complete_languages(t)],
    )


def _template_or_page(request: Request, who: Who, name: str) -> ProcessTemplate | HTMLResponse:
    _known(request, name)
    try:
        return load_template(settings_of(request).templates_dir / name)
    except SamverkanError as exc:
        return page(
            request,
            who,
            "template.html",
            status=409,
            title=f"Template {name}",
            section="templates",
            template_name=name,
            t=None,
            problem=str(exc),
            report=None,
            timing=timing,
            kinds=KIND_LABELS,
            used_questions=[],
        )


@router.get("/launch/{name}", response_class=HTMLResponse)
def launch_page(request: Request, who: Coordinator, name: str) -> HTMLResponse:
    t = _template_or_page(request, who, name)
    if isinstance(t, HTMLResponse):
        return t
    return _launch_page(request, who, t, _blank(t, settings_of(request).timezone))


def steering_addresses(text: str) -> list[str]:
    """The steering group's addresses as typed: one a line, or separated by commas."""
    return [a.strip() for a in re.split(r"[\n,;]+", text) if a.strip()]


def error_field(message: str, t: ProcessTemplate) -> str | None:
    """The form field an error of ``launch_cycle`` concerns, if its message tells."""
    for var in t.spec.variables:
        if f"--var {var} " in message or message.startswith(f"missing variable {var}:"):
            return f"var-{var}"
    for stage in t.spec.stages:
        if stage.meeting and message.startswith(f"the {stage.key} starts "):
            return f"var-{stage.meeting.starts}"  # it starts before the cycle does
    for option, name in (
        ("--name", "name"),
        ("--start", "start"),
        ("--steering", "steering"),
        ("--fallback-language", "fallback_language"),
    ):
        if option in message:
            return name
    if message.startswith("unknown time zone"):
        return "timezone"
    if message.startswith("audience ") or "match the audience" in message:
        return "audience"
    return None


def for_the_page(message: str, where: str | None, t: ProcessTemplate) -> str:
    """A launch error worded for the form rather than the command line."""
    if where and where.startswith("var-"):
        var = where[4:]
        if message.startswith(f"missing variable {var}:"):
            return f"Fill in {label(var).lower()}."
        message = message.replace(f"--var {var}", label(var).lower())
    for option, words in (
        ("--name", "name"),
        ("--start", "start"),
        ("--steering", "steering group address"),
        ("--fallback-language", "the fallback language"),
    ):
        message = message.replace(option, words)
    message = message.replace(
        "import them first with: samverkan participants import FILE.csv",
        "add them to the network first",
    )
    return message[:1].upper() + message[1:]


@router.post("/launch/{name}", response_model=None)
async def launch(request: Request, who: Coordinator, name: str) -> Response:
    submitted = await checked_form(request, who)
    t = _template_or_page(request, who, name)
    if isinstance(t, HTMLResponse):
        return t
    settings = settings_of(request)
    form = _blank(t, settings.timezone)
    for key in form.values:
        form.values[key] = field(submitted, key)
    variables = {var: form.values[f"var-{var}"] for var in t.spec.variables}
    try:
        cycle_id = await run_in_threadpool(
            functools.partial(
                launch_cycle,
                engine_of(request),
                settings,
                template=t.name,
                name=form.values["name"],
                start=form.values["start"],
                # An empty field is a missing variable, or its default, as on the command line.
                variables={k: v for k, v in variables.items() if v},
                timezone=form.values["timezone"] or None,
                audience=form.values["audience"] or None,
                steering=steering_addresses(form.values["steering"]),
                fallback_language=form.values["fallback_language"] or None,
            )
        )
    except SamverkanError as exc:
        message = str(exc)
        where = error_field(message, t)
        if where and where in form.values:
            form.errors[where] = for_the_page(message, where, t)
        else:
            form.problem = for_the_page(message, None, t)
        return _launch_page(request, who, t, form, status=422)
    return RedirectResponse(url(f"/cycles/{cycle_id}"), status_code=303)
