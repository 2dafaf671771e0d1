"""A cycle's pages: its plan as a timeline, changing the plan (a preview, then a confirmation),
a stage's drafts and their approval, the outbox, and the audit log.

Every change of the plan is one of the operations of ``samverkan stage …`` and ``samverkan
cycle …`` (flows/cycles/resequence.py): the first submit runs it as a dry run and shows the
lines the command's ``--dry-run`` prints; the confirmation carries the same arguments and the
plan version the preview was made on, so a plan that changed meanwhile is never changed on the
strength of a stale preview.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from flows.cycles import plan as planning
from flows.cycles import resequence
from flows.cycles.approve import DraftView, approve_stage, stage_drafts
from flows.cycles.glance import cycles_at_a_glance
from flows.cycles.overview import audit_entries, cycle_overview
from flows.cycles.signoff import SignoffStatus, Waiting, signoff_status, waiting_for
from flows.stages.base import role_label
from flows.web.workspace.core import (
    LANGUAGE_NAMES,
    MAX_ID,
    Coordinator,
    SignerOrMore,
    Who,
    checked_form,
    engine_of,
    field,
    language_label,
    local_time,
    number,
    page,
    settings_of,
    url,
)
from flows.wording import plural
from messaging import i18n
from messaging.outbox import listing, resend_uncertain, status_counts
from store.errors import InvalidInput, NotFound, SamverkanError
from store.models import CycleStatus, MessageStatus
from store.types import utcnow

router = APIRouter()

OPEN = {"pending", "awaiting_approval", "approved", "held"}
# What "uncertain" means: the words of ``samverkan outbox --help``.
UNCERTAIN = (
    'A message is "uncertain" when the sender stopped, or the connection was lost, after it '
    "went out and before the server confirmed it: it may have arrived. Such messages are never "
    "sent again on their own; resend them when you have decided to."
)


# -- the operations -------------------------------------------------------------------------


def _text(value: str) -> str | None:
    return value or None


def _check(value: str) -> bool:
    return value in ("on", "yes", "1", "true")


def _tri(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _unless_edit(value: str) -> str | None:
    # keep (empty), nobody left out ("none" -> ""), or a rule
    return {"": None, "none": ""}.get(value, value)


def _unless_add(value: str) -> str | None:
    return None if value in ("", "none") else value


def _comma_list(value: str) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] or None


def _address_list(value: str) -> list[str] | None:
    return value.replace(",", " ").split() or None


@dataclass(frozen=True)
class Input:
    """One field of an operation's form, and the argument it becomes."""

    name: str
    label: str
    kind: str = "text"  # text | time | stage | choice | check | textarea
    help: str = ""
    required: bool = False
    option: str = ""  # the command's option, as the application's messages name it
    arg: str = ""  # the argument's name (default: the field's)
    convert: Callable[[str], Any] = _text
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""

    @property
    def argument(self) -> str:
        return self.arg or self.name


@dataclass(frozen=True)
class Operation:
    name: str
    title: str  # the page's heading
    explains: str  # the command's help, in words for the page
    function: Callable[..., resequence.Effects]
    done: str  # the message after it was applied; {stage} is the stage's key
    inputs: tuple[Input, ...] = ()
    for_stage: bool = False  # takes a stage (the field "stage", argument "key")
    allowed: tuple[str, ...] = ("running", "paused")

    def fields(self) -> tuple[Input, ...]:
        if not self.for_stage:
            return self.inputs
        stage = Input("stage", "Stage", "stage", required=True, arg="key")
        return (stage, *self.inputs)


def _status(to: CycleStatus) -> Callable[..., resequence.Effects]:
    def change(engine: Any, settings: Any, **kw: Any) -> resequence.Effects:
        return resequence.set_cycle_status(engine, settings, to=to, **kw)

    return change


ZONE_HELP = "YYYY-MM-DD HH:MM, in the cycle's time zone ({zone})."
UNLESS_HELP = "Who is left out: those who accepted the meeting, who responded, or who answered."
AUDIENCE_HELP = 'For example role=politician or org="Region Västra Götaland".'

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "reschedule",
            "Reschedule a stage",
            "Give a stage a new time. For a meeting this moves the meeting itself; if it was "
            "already announced, everyone invited gets a calendar update, and the stages that "
            "follow it (reminders, follow-ups) move with it.",
            resequence.reschedule_stage,
            "Rescheduled {stage}.",
            (
                Input(
                    "at",
                    "New time",
                    "time",
                    ZONE_HELP + " For a meeting: when it starts.",
                    required=True,
                    option="--at",
                ),
            ),
            for_stage=True,
        ),
        Operation(
            "move",
            "Move a stage",
            "Move a stage that has not run after or before another. A stage with a relative "
            "time takes the other stage as its new anchor.",
            resequence.move_stage,
            "Moved {stage}.",
            (
                Input(
                    "after", "Put it after", "stage", "Give this or the next one.", option="--after"
                ),
                Input("before", "Or put it before", "stage", option="--before"),
            ),
            for_stage=True,
        ),
        Operation(
            "edit",
            "Edit a stage",
            "Change a stage that has not run: its email, audience, who is left out, or "
            "approval. Drafts waiting for approval are dropped and made again on the next tick.",
            resequence.edit_stage,
            "Edited {stage}.",
            (
                Input(
                    "template",
                    "Email",
                    help="An email of the cycle's template, e.g. progress-note. Empty: keep it.",
                    option="--template",
                ),
                Input(
                    "audience",
                    "Audience",
                    help=AUDIENCE_HELP + " Empty: keep it.",
                    option="--audience",
                ),
                Input(
                    "unless",
                    "Leave out",
                    "choice",
                    UNLESS_HELP,
                    option="--unless",
                    convert=_unless_edit,
                    choices=(("", "Keep as it is"), ("none", "Nobody left out")),
                ),
                Input(
                    "approval",
                    "Approval",
                    "choice",
                    "Whether drafts wait for a coordinator's approval.",
                    option="--approval",
                    convert=_tri,
                    choices=(
                        ("", "Keep as it is"),
                        ("yes", "Drafts wait for approval"),
                        ("no", "No approval needed"),
                    ),
                ),
            ),
            for_stage=True,
        ),
        Operation(
            "skip",
            "Skip a stage",
            "Skip a stage that has not run (its drafts, if any, are dropped).",
            resequence.skip_stage,
            "Skipped {stage}.",
            for_stage=True,
        ),
        Operation(
            "cancel",
            "Cancel a stage",
            "Cancel a stage. Cancelling an announced meeting sends everyone invited a calendar "
            "cancellation and cancels the reminders that depend on it.",
            resequence.cancel_stage,
            "Cancelled {stage}.",
            for_stage=True,
        ),
        Operation(
            "add",
            "Add a stage",
            "Add a stage to a running cycle, at a time or relative to another stage.",
            resequence.add_stage,
            "Added {stage}.",
            (
                Input(
                    "kind",
                    "Kind",
                    "choice",
                    required=True,
                    option="--kind",
                    choices=(
                        ("email", "Email"),
                        ("meeting", "Meeting (with a calendar invite)"),
                        ("followup", "Follow-up questions"),
                        ("reflection", "Reflection for the coordinator"),
                    ),
                ),
                Input(
                    "key",
                    "Key",
                    help="Lower-case letters, digits and dashes, e.g. second-workshop.",
                    required=True,
                    option="--key",
                ),
                Input(
                    "at",
                    "At a time",
                    "time",
                    ZONE_HELP + " Or give an anchor below.",
                    option="--at",
                ),
                Input("after", "Or after the stage", "stage", option="--after"),
                Input("before", "Or before the stage", "stage", option="--before"),
                Input(
                    "offset",
                    "Offset from that stage",
                    help="For example 3d, 2h or 90m.",
                    option="--offset",
                ),
                Input(
                    "template",
                    "Email",
                    help="An email of the cycle's template, e.g. progress-note. A meeting, "
                    "follow-up or reflection has one by default.",
                    option="--template",
                ),
                Input(
                    "audience",
                    "Audience",
                    help=AUDIENCE_HELP + " Empty: everyone.",
                    option="--audience",
                ),
                Input(
                    "unless",
                    "Leave out",
                    "choice",
                    UNLESS_HELP,
                    option="--unless",
                    convert=_unless_add,
                    choices=(("none", "Nobody"),),
                ),
                Input(
                    "approval",
                    "Drafts wait for approval",
                    "check",
                    option="--approval",
                    convert=_check,
                ),
                Input(
                    "starts",
                    "Meeting starts",
                    "time",
                    ZONE_HELP + " Only for a meeting.",
                    option="--starts",
                ),
                Input(
                    "duration",
                    "Meeting length",
                    help="For example 2h or 90m.",
                    option="--duration",
                    default="2h",
                ),
                Input(
                    "location",
                    "Meeting place",
                    help="An address or a video link.",
                    option="--location",
                ),
                Input(
                    "questions",
                    "Follow-up questions",
                    help="Question ids, comma-separated. Empty: the usual four.",
                    option="--questions",
                    convert=_comma_list,
                ),
            ),
            allowed=("running", "paused", "completed"),
        ),
        Operation(
            "add-participants",
            "Add participants",
            "Add late joiners to the cycle. They receive the invitation and the current invite "
            "of meetings still ahead, unless you say no catch-up.",
            resequence.add_participants,
            "Added the participants.",
            (
                Input(
                    "emails",
                    "Email addresses",
                    "textarea",
                    "One or more, one a line. Or give an audience instead.",
                    option="--email",
                    convert=_address_list,
                ),
                Input(
                    "audience",
                    "Or everyone matching",
                    help='For example org="Göteborgs Stad".',
                    option="--audience",
                ),
                Input(
                    "no_catch_up",
                    "No catch-up: do not send them what others already got",
                    "check",
                    arg="catch_up",
                    convert=lambda v: not _check(v),
                    option="--no-catch-up",
                ),
            ),
        ),
        Operation(
            "pause",
            "Pause the cycle",
            "Pause the cycle: no stage runs until it is resumed.",
            _status(CycleStatus.paused),
            "Paused the cycle.",
            allowed=("running",),
        ),
        Operation(
            "resume",
            "Resume the cycle",
            "Resume a paused cycle; stages that fell due meanwhile run on the next tick.",
            _status(CycleStatus.running),
            "Resumed the cycle.",
            allowed=("paused",),
        ),
        Operation(
            "cancel-cycle",
            "Cancel the cycle",
            "Cancel the cycle: stages still to run are cancelled, unsent messages dropped, and "
            "announced meetings still ahead are cancelled in everyone's calendar.",
            _status(CycleStatus.cancelled),
            "Cancelled the cycle.",
            allowed=("running", "paused"),
        ),
    )
}
STAGE_OPERATIONS = ("reschedule", "move", "edit", "skip", "cancel")


@dataclass
class Asked:
    """An operation as submitted: the raw values (sent on with the confirmation), the
    arguments they make, and what is wrong with them."""

    op: Operation
    values: dict[str, str]
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    error: str = ""  # not about one field

    @property
    def stage(self) -> str:
        return self.values.get("stage", "") or self.values.get("key", "")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def read_asked(op: Operation, values: Mapping[str, str], zone: str) -> Asked:
    """Check the fields the page can check (required ones, times) and make the arguments."""
    asked = Asked(op, {i.name: values.get(i.name, "") for i in op.fields()})
    tz = planning.zone(zone)
    for i in op.fields():
        value = asked.values[i.name]
        if i.required and not value:
            asked.errors[i.name] = f"Fill in “{i.label}”."
            continue
        if i.kind == "time" and value:
            # The same reading of a time as the command's (ISO; without an offset, in the
            # cycle's zone); "in the past" is checked against the same clock as the change.
            try:
                when = planning.parse_when(value, tz, what="time")
            except InvalidInput as exc:
                asked.errors[i.name] = _sentence(str(exc))
                continue
            if when < utcnow():
                now = local_time(utcnow(), zone)
                asked.errors[i.name] = f"{value} is in the past (it is {now} now)."
                continue
        asked.arguments[i.argument] = i.convert(value)
    return asked


def place_error(asked: Asked, exc: SamverkanError) -> None:
    """Put the application's message beside the field it is about (by the option it names,
    or the stage it names), or above the form."""
    message = str(exc)
    for i in asked.op.fields():
        if i.option and i.option in message.split("(")[0]:
            words = message
            for j in asked.op.fields():
                if j.option:
                    words = words.replace(j.option, f"“{j.label}”")
            asked.errors[i.name] = _sentence(words)
            return
    for i in asked.op.fields():
        value = asked.values.get(i.name)
        if i.kind == "stage" and value and f"no stage {value!r}" in message:
            asked.errors[i.name] = _sentence(message)
            return
    asked.error = _sentence(message)


# -- shared helpers -------------------------------------------------------------------------


def overview_of(request: Request, cycle_id: int) -> dict[str, Any]:
    """What ``samverkan cycle show`` shows, or the 404 page."""
    if not 0 < cycle_id <= MAX_ID:
        raise HTTPException(404)
    try:
        return cycle_overview(engine_of(request), cycle_id=cycle_id)
    except NotFound:
        raise HTTPException(404) from None


def stage_choices(data: dict[str, Any]) -> list[str]:
    return [s["key"] for s in data["stages"]]


def counts_text(messages: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(messages.items())) or "none"


def when(value: str | None, zone: str) -> str:
    return local_time(datetime.fromisoformat(value), zone) if value else ""


# -- the cycle page -------------------------------------------------------------------------


def signoff_of(request: Request, cycle_id: int, stage: dict[str, Any]) -> SignoffStatus | None:
    """Where a stage's sign-off stands, or None when it cannot be shown (a broken template:
    the stage says why when it is due, and its sign-off page says it too)."""
    try:
        return signoff_status(
            engine_of(request), settings_of(request), cycle_id=cycle_id, key=stage["key"]
        )
    except SamverkanError:
        return None


@router.get("/cycles/{cycle_id}", response_class=HTMLResponse)
def cycle_page(
    request: Request, cycle_id: int, who: Coordinator, done: str = "", stage: str = ""
) -> HTMLResponse:
    data = overview_of(request, cycle_id)
    message = ""
    if done in OPERATIONS:
        key = stage if stage in stage_choices(data) else "the stage"
        message = OPERATIONS[done].done.format(stage=key)
    stages = []
    for s in data["stages"]:
        actions = []
        if data["status"] in ("running", "paused"):
            if s["status"] in OPEN:
                actions = list(STAGE_OPERATIONS)
            elif s["kind"] == "meeting" and s["status"] == "done":
                actions = ["reschedule", "cancel"]  # an announced meeting
        stages.append(
            {
                **s,
                "signed": signoff_of(request, cycle_id, s) if s["signoff"] else None,
                "due_local": s["due"][:16].replace("T", " "),
                "starts_local": (s["starts"] or "")[:16].replace("T", " "),
                "counts": counts_text(s["messages"]),
                "actions": [(op, OPERATIONS[op].title.split()[0]) for op in actions],
            }
        )
    cycle_ops = [
        op
        for op in ("add", "add-participants", "pause", "resume", "cancel-cycle")
        if data["status"] in OPERATIONS[op].allowed
    ]
    return page(
        request,
        who,
        "cycle.html",
        title=data["name"],
        section="overview",
        cycle=data,
        stages=stages,
        cycle_ops=[(op, OPERATIONS[op].title) for op in cycle_ops],
        message=message,
    )


# -- changing the plan ----------------------------------------------------------------------


def operation_of(name: str) -> Operation:
    if name not in OPERATIONS:
        raise HTTPException(404)
    return OPERATIONS[name]


def change_form(
    request: Request, who: Who, data: dict[str, Any], asked: Asked, *, status: int = 200
) -> HTMLResponse:
    return page(
        request,
        who,
        "cycle_change.html",
        status=status,
        title=asked.op.title,
        section="overview",
        cycle=data,
        asked=asked,
        stages=stage_choices(data),
        followups=[s["key"] for s in data["stages"] if s["kind"] == "followup"],
        zone_help=lambda text: text.format(zone=data["timezone"]),
    )


def preview_page(
    request: Request,
    who: Who,
    data: dict[str, Any],
    asked: Asked,
    effects: resequence.Effects,
    *,
    status: int = 200,
    stale: bool = False,
    reason: str = "",
) -> HTMLResponse:
    return page(
        request,
        who,
        "cycle_preview.html",
        status=status,
        title=f"Preview: {effects.title}",
        section="overview",
        cycle=data,
        asked=asked,
        effects=effects,
        stale=stale,
        reason=reason,
        back=url(f"/cycles/{data['id']}/change", op=asked.op.name, **asked.values),
    )


def _run(request: Request, cycle_id: int, asked: Asked, **kw: Any) -> resequence.Effects:
    return asked.op.function(
        engine_of(request), settings_of(request), cycle_id=cycle_id, **asked.arguments, **kw
    )


@router.get("/cycles/{cycle_id}/change", response_class=HTMLResponse)
def change_page(request: Request, cycle_id: int, who: Coordinator, op: str = "") -> HTMLResponse:
    data = overview_of(request, cycle_id)
    operation = operation_of(op)
    given = dict(request.query_params)
    for i in operation.fields():
        given.setdefault(i.name, i.default)
    if operation.name == "reschedule" and not request.query_params.get("at"):
        due = {s["key"]: s["starts"] or s["due"] for s in data["stages"]}.get(
            given.get("stage", "")
        )
        if due:
            given["at"] = due[:16].replace("T", " ")
    asked = Asked(operation, {i.name: given.get(i.name, "") for i in operation.fields()})
    return change_form(request, who, data, asked)


@router.post("/cycles/{cycle_id}/change", response_model=None)
async def preview_change(request: Request, cycle_id: int, who: Coordinator) -> Response:
    form = await checked_form(request, who)
    data = await run_in_threadpool(overview_of, request, cycle_id)
    asked = read_asked(operation_of(field(form, "op")), _values(form), data["timezone"])
    if asked.errors:
        return change_form(request, who, data, asked, status=422)
    try:
        effects = await run_in_threadpool(_run, request, cycle_id, asked, dry_run=True)
    except SamverkanError as exc:
        place_error(asked, exc)
        return change_form(request, who, data, asked, status=422)
    return preview_page(request, who, data, asked, effects)


def _values(form: FormData) -> dict[str, str]:
    return {k: field(form, k) for k in form if k not in ("csrf", "op", "expect_version")}


@router.post("/cycles/{cycle_id}/change/confirm", response_model=None)
async def confirm_change(request: Request, cycle_id: int, who: Coordinator) -> Response:
    form = await checked_form(request, who)
    data = await run_in_threadpool(overview_of, request, cycle_id)
    asked = read_asked(operation_of(field(form, "op")), _values(form), data["timezone"])
    reason = field(form, "reason")
    expected = field(form, "expect_version")
    if asked.errors:
        return change_form(request, who, data, asked, status=422)
    if number(expected) is None:
        asked.error = "This confirmation has no plan version. Make the preview again."
        return change_form(request, who, data, asked, status=422)
    try:
        await run_in_threadpool(
            _run, request, cycle_id, asked, expect_version=number(expected), reason=reason or None
        )
    except resequence.StalePlan:
        # Someone (or a tick) changed the plan after the preview: show what it would do now.
        fresh = await run_in_threadpool(overview_of, request, cycle_id)
        try:
            effects = await run_in_threadpool(_run, request, cycle_id, asked, dry_run=True)
        except SamverkanError as exc:
            place_error(asked, exc)
            asked.error = (
                "The plan changed since your preview, and nothing was changed. "
                + (asked.error or "")
            ).strip()
            return change_form(request, who, fresh, asked, status=409)
        return preview_page(
            request, who, fresh, asked, effects, status=409, stale=True, reason=reason
        )
    except SamverkanError as exc:
        place_error(asked, exc)
        return change_form(request, who, data, asked, status=422)
    return RedirectResponse(
        url(
            f"/cycles/{cycle_id}",
            done=asked.op.name,
            stage=asked.values.get("stage", "") or asked.values.get("key", ""),
        ),
        status_code=303,
    )


# -- drafts and approval --------------------------------------------------------------------


@dataclass
class Variant:
    """The drafts of one language and role: one shown as its recipient sees it, and all listed."""

    language: str
    role: str
    drafts: list[DraftView]

    @property
    def label(self) -> str:
        role = role_label(self.role, "en") if self.role else "no role"
        return f"{language_label(self.language)}, {role}"

    @property
    def shown(self) -> DraftView:
        return self.drafts[0]

    @property
    def dir(self) -> str:
        """The direction the drafts' text runs in (rtl for Arabic)."""
        return i18n.direction(self.language) if self.language else "ltr"


# Recipients listed under each example on the drafts page (one person's message is found by
# address, every message is in the outbox).
LISTED = 500


def variants_of(drafts: list[DraftView]) -> list[Variant]:
    found: dict[tuple[str, str], Variant] = {}
    for d in drafts:
        found.setdefault((d.language, d.role), Variant(d.language, d.role, [])).drafts.append(d)
    return list(found.values())


def drafts_page(
    request: Request,
    who: Who,
    cycle_id: int,
    key: str,
    *,
    participant: str = "",
    error: str = "",
    message: str = "",
    status: int = 200,
) -> HTMLResponse:
    data = overview_of(request, cycle_id)
    stage = next((s for s in data["stages"] if s["key"] == key), None)
    if stage is None:
        raise HTTPException(404)
    finding = ""
    try:
        result = stage_drafts(
            engine_of(request),
            settings_of(request),
            cycle_id=cycle_id,
            key=key,
            participant=participant or None,
            # A signer reads what goes to their own organisation, and nothing else.
            organisation=None if who.is_coordinator else (who.organisation or ""),
            examples=True,
        )
        drafts = result.drafts
        stored = result.stored
    except NotFound as exc:
        drafts, stored, finding = [], True, _sentence(str(exc))
    approvable = (
        who.is_coordinator
        and stage["approval"]
        and stage["status"] in ("pending", "awaiting_approval")
    )
    return page(
        request,
        who,
        "cycle_drafts.html",
        status=status,
        title=f"Drafts of {key}",
        section="overview" if who.is_coordinator else "",
        cycle=data,
        stage=stage,
        stored=stored,
        variants=variants_of(drafts),
        listed=LISTED,
        count=plural(len(drafts), "message"),
        participant=participant,
        finding=finding,
        approvable=approvable,
        error=error,
        message=message,
    )


@router.get("/drafts", response_class=HTMLResponse)
def drafts_waiting(request: Request, who: SignerOrMore) -> HTMLResponse:
    """The stages whose drafts wait for approval, in every cycle: a signer's start page."""
    waiting = [
        (c, key)
        for c in cycles_at_a_glance(engine_of(request))
        if c.status in ("running", "paused")
        for key in c.awaiting_approval
    ]
    to_sign: list[Waiting] = []
    if who.role == "signer" and who.organisation:
        to_sign = waiting_for(engine_of(request), organisation=who.organisation)
    return page(
        request,
        who,
        "drafts_waiting.html",
        title="Drafts waiting",
        section="drafts",
        waiting=waiting,
        to_sign=to_sign,
        language_names=LANGUAGE_NAMES,
    )


@router.get("/cycles/{cycle_id}/stages/{key}/drafts", response_class=HTMLResponse)
def drafts(
    request: Request,
    cycle_id: int,
    key: str,
    who: SignerOrMore,
    participant: str = "",
    approved: str = "",
) -> HTMLResponse:
    message = ""
    if approved and who.is_coordinator:
        data = overview_of(request, cycle_id)
        stage = next((s for s in data["stages"] if s["key"] == key), None)
        if stage and stage["status"] == "approved":
            due = stage["due"][:16].replace("T", " ")
            message = f"Approved {key} in advance: it is sent when it is due ({due})."
        elif stage and stage["status"] in ("done", "running"):
            message = f"Approved the drafts of {key}: they are sent on the next tick."
    return drafts_page(request, who, cycle_id, key, participant=participant, message=message)


@router.post("/cycles/{cycle_id}/stages/{key}/approve", response_model=None)
async def approve(request: Request, cycle_id: int, key: str, who: Coordinator) -> Response:
    form = await checked_form(request, who)
    await run_in_threadpool(overview_of, request, cycle_id)
    reason = field(form, "reason")
    try:
        await run_in_threadpool(
            lambda: approve_stage(
                engine_of(request),
                cycle_id=cycle_id,
                key=key,
                reason=reason or None,
                settings=settings_of(request),
            )
        )
    except NotFound:
        raise HTTPException(404) from None
    except SamverkanError as exc:
        error = _sentence(str(exc))
        return await run_in_threadpool(
            lambda: drafts_page(request, who, cycle_id, key, error=error, status=422)
        )
    return RedirectResponse(
        url(f"/cycles/{cycle_id}/stages/{key}/drafts", approved=1), status_code=303
    )


# -- the outbox -----------------------------------------------------------------------------


# Messages per outbox page: a 5,000-person stage is 25 pages, each quick to render and read.
OUTBOX_PAGE = 200


@router.get("/cycles/{cycle_id}/outbox", response_class=HTMLResponse)
def outbox(
    request: Request,
    cycle_id: int,
    who: Coordinator,
    status: str = "",
    resent: str = "",
    page_number: Annotated[str, Query(alias="page")] = "1",
) -> HTMLResponse:
    data = overview_of(request, cycle_id)
    engine = engine_of(request)
    counts = status_counts(engine, cycle_id=cycle_id)
    total = sum(counts.values())
    error = ""
    at = number(page_number, 1) or 1
    shown = counts.get(status, 0) if status else total
    pages = max(1, -(-shown // OUTBOX_PAGE))
    at = min(max(at, 1), pages)
    rows: list[dict[str, object]] = []
    try:
        rows = listing(
            engine,
            cycle_id=cycle_id,
            statuses=[status] if status else None,
            limit=OUTBOX_PAGE,
            offset=(at - 1) * OUTBOX_PAGE,
        )
    except InvalidInput as exc:
        error = _sentence(str(exc))
    message = ""
    requeued = number(resent)
    if requeued is not None:
        message = f"Queued {plural(requeued, 'uncertain message')} again; the next tick sends them."
    first = (at - 1) * OUTBOX_PAGE + 1
    return page(
        request,
        who,
        "cycle_outbox.html",
        status=422 if error else 200,
        title=f"Outbox of {data['name']}",
        section="overview",
        cycle=data,
        rows=[{**r, "sent_local": when(str(r["sent_at"] or ""), data["timezone"])} for r in rows],
        counts=sorted(counts.items()),
        total=total,
        shown=shown,
        first=first,
        last=first + len(rows) - 1,
        number=at,
        pages=pages,
        statuses=[s.value for s in MessageStatus],
        chosen=status,
        error=error,
        message=message,
    )


@router.get("/cycles/{cycle_id}/outbox/resend", response_class=HTMLResponse)
def resend_page(request: Request, cycle_id: int, who: Coordinator) -> HTMLResponse:
    data = overview_of(request, cycle_id)
    uncertain = listing(engine_of(request), cycle_id=cycle_id, statuses=["uncertain"])
    return page(
        request,
        who,
        "cycle_resend.html",
        title="Resend uncertain messages",
        section="overview",
        cycle=data,
        uncertain=uncertain,
        explains=UNCERTAIN,
    )


@router.post("/cycles/{cycle_id}/outbox/resend", response_model=None)
async def resend(request: Request, cycle_id: int, who: Coordinator) -> Response:
    form = await checked_form(request, who)
    await run_in_threadpool(overview_of, request, cycle_id)
    reason = field(form, "reason")
    count = await run_in_threadpool(
        resend_uncertain, engine_of(request), cycle_id=cycle_id, reason=reason or None
    )
    return RedirectResponse(url(f"/cycles/{cycle_id}/outbox", resent=count), status_code=303)


# -- the audit log --------------------------------------------------------------------------


@router.get("/cycles/{cycle_id}/audit", response_class=HTMLResponse)
def audit(request: Request, cycle_id: int, who: Coordinator) -> HTMLResponse:
    data = overview_of(request, cycle_id)
    entries = audit_entries(engine_of(request), cycle_id=cycle_id)
    return page(
        request,
        who,
        "cycle_audit.html",
        title=f"Audit log of {data['name']}",
        section="overview",
        cycle=data,
        entries=[{**e, "when": when(e["at"], data["timezone"])} for e in entries],
    )
