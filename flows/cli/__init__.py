"""The ``samverkan`` command: parse, call one library function, print.

Our own errors become one line on stderr and exit status 2; nothing here imports Prefect
unless the command runs a flow (tick, demo).
"""

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from store.errors import ImportRejected, SamverkanError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="samverkan",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _group_help(text: str, example: str) -> str:
    # \b keeps click from re-wrapping the example into the sentence before it.
    return f"{text}\n\n\b\nExample:  {example}"


participants_app = typer.Typer(
    help=_group_help(
        "Import and list the network's participants.", "samverkan participants import network.csv"
    ),
    no_args_is_help=True,
)
templates_app = typer.Typer(
    help=_group_help("List and check process templates.", "samverkan templates list"),
    no_args_is_help=True,
)
cycle_app = typer.Typer(
    help=_group_help(
        "Launch, list, show, pause, resume and cancel cycles.", "samverkan cycle show 1"
    ),
    no_args_is_help=True,
)
stage_app = typer.Typer(
    help=_group_help(
        "Change the stages of a running cycle (each with --dry-run).",
        "samverkan stage skip 1 workshop-reminder --dry-run",
    ),
    no_args_is_help=True,
)
inbox_app = typer.Typer(
    help=_group_help(
        "Read participants' calendar replies.", "samverkan inbox import ~/Maildir/replies"
    ),
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"samverkan {version('samverkan')}")
        except PackageNotFoundError:
            typer.echo("samverkan (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run facilitated collaboration cycles between organisations: invitations, workshops
    with calendar invites, reminders, follow-up questions and reflection.

    \b
    Example:  samverkan demo
    """


app.add_typer(participants_app, name="participants")
app.add_typer(templates_app, name="templates")
app.add_typer(cycle_app, name="cycle")
app.add_typer(stage_app, name="stage")
app.add_typer(inbox_app, name="inbox")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handled(func: F) -> F:
    """Turn our errors into one line and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImportRejected as exc:
            for problem in exc.problems:
                typer.echo(problem, err=True)
            fail(f"{len(exc.problems)} invalid row(s); nothing was imported")
        except SamverkanError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


# Ids are integers of the store (PostgreSQL's integer is 32 bits): a larger one names no cycle,
# and is answered here, since the database would fail on it.
MAX_ID = 2**31 - 1


def _cycle_id(value: int) -> int:
    if abs(value) > MAX_ID:
        fail(f"no cycle with id {value} (see: samverkan cycle list)")
    return value


def _cycle_ids(values: list[int] | None) -> list[int] | None:
    for value in values or []:
        _cycle_id(value)
    return values


def _in_range(option: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:  # false for nan too
        fail(f"{option} {value:g}: use {low:g} to {high:g}{unit}")


def _settings() -> Any:
    from flows.settings import load_settings

    return load_settings()


def _engine(settings: Any) -> Any:
    from store.db import open_store

    return open_store(settings.database_url)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# participants ------------------------------------------------------------------------------


@participants_app.command("import")
@handled
def participants_import(
    file: Annotated[
        Path, typer.Argument(help="CSV with columns name,email,organisation,role,language")
    ],
) -> None:
    """Import participants from a CSV file; all rows or none.

    Roles: service_user, professional, manager, politician, facilitator. Languages: sv, en.
    A known email (any case) updates that participant.

    \b
    Example:  samverkan participants import network.csv
    """
    from flows.people.participants import import_participants

    settings = _settings()
    result = import_participants(_engine(settings), file)
    typer.echo(f"imported {result.created} new and updated {result.updated} participants")


@participants_app.command("list")
@handled
def participants_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List participants with their organisation, role and language, and whether they still
    get mail (not those who unsubscribed or were erased).

    \b
    Example:  samverkan participants list --json
    """
    from store import queries
    from store.db import session_scope

    with session_scope(_engine(_settings())) as session:
        rows = queries.list_participants(session)
    data: list[dict[str, Any]] = [
        {
            "name": p.name,
            "email": p.email,
            "organisation": o.name,
            "role": str(p.role),
            "language": str(p.language),
            "erased": p.erased,
            "unsubscribed": not p.consent and not p.erased,
        }
        for p, o in rows
    ]
    if as_json:
        _print_json(data)
        return
    if not data:
        typer.echo("no participants yet: samverkan participants import FILE.csv")
        return

    def mail(d: dict[str, Any]) -> str:
        return "erased" if d["erased"] else "unsubscribed" if d["unsubscribed"] else "yes"

    _table(
        [
            [d["name"], d["email"], d["organisation"], d["role"], d["language"], mail(d)]
            for d in data
        ],
        ["name", "email", "organisation", "role", "language", "mail"],
    )


@participants_app.command("export")
@handled
def participants_export(
    email: Annotated[str, typer.Argument(help="The person's email")],
) -> None:
    """Print everything stored about one person, as JSON (right of access).

    \b
    Example:  samverkan participants export anna@example.org > anna.json
    """
    from flows.people.privacy import export_person

    _print_json(export_person(_engine(_settings()), email=email))


@participants_app.command("erase")
@handled
def participants_erase(
    email: Annotated[str, typer.Argument(help="The person's email")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Kept in the audit log")] = None,
) -> None:
    """Erase one person's personal data (name, email, written answers, messages to them).
    Their scale answers stay as anonymous numbers; they get no further mail.

    \b
    Example:  samverkan participants erase anna@example.org --yes --reason "asked by phone"
    """
    from flows.people.privacy import erase_person

    if not yes and not typer.confirm(f"Erase everything personal about {email}?"):
        fail("nothing was erased")
    done = erase_person(_engine(_settings()), email=email, reason=reason)
    typer.echo(
        f"erased {email}: {done['written_answers']} written answers and "
        f"{done['messages']} messages cleared, {done['dropped']} unsent messages dropped"
    )
    if not done["log_emptied"]:
        typer.echo(
            "note: another process is reading the database, so its write-ahead log (which "
            "still holds the old rows) is emptied only when that process stops or writes"
        )


# templates ---------------------------------------------------------------------------------


@templates_app.command("list")
@handled
def templates_list() -> None:
    """List the process templates that cycles can be launched from.

    \b
    Example:  samverkan templates list
    """
    from flows.templates import list_templates, load_template

    settings = _settings()
    names = list_templates(settings.templates_dir)
    if not names:
        typer.echo(f"no templates in {settings.templates_dir}")
    for name in names:
        try:
            t = load_template(settings.templates_dir / name)
            stages = " → ".join(s.key for s in t.spec.stages)
            typer.echo(f"{name}  {t.spec.title.get('en', '')}: {stages}")
        except SamverkanError as exc:
            typer.echo(f"{name}  (broken: {exc})")


@templates_app.command("validate")
@handled
def templates_validate(
    path: Annotated[str, typer.Argument(help="A template folder, or the name of one")],
) -> None:
    """Check a template: its process.yaml, its anchors, and every email in both languages,
    rendered with the example values of its variables.

    \b
    Example:  samverkan templates validate process_templates/learning-cycle
    """
    from flows.templates.validation import validate_template

    settings = _settings()
    report = validate_template(settings, path)
    typer.echo(report)


@templates_app.command("schema")
@handled
def templates_schema() -> None:
    """Print the JSON schema of process.yaml, for editors.

    \b
    Example:  samverkan templates schema > process.schema.json
    """
    from flows.templates import json_schema

    _print_json(json_schema())


# cycles ------------------------------------------------------------------------------------

ShownId = Annotated[int, typer.Argument(metavar="ID", help="The cycle's id", callback=_cycle_id)]


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            fail(f"--var takes KEY=VALUE, not {pair!r}")
        values[key.strip()] = value
    return values


@cycle_app.command("launch")
@handled
def cycle_launch(
    template: Annotated[str, typer.Argument(help="Template name (see: samverkan templates list)")],
    name: Annotated[str, typer.Option("--name", help="The cycle's name, shown to participants")],
    start: Annotated[str, typer.Option("--start", help="ISO date-time, e.g. 2027-01-20T09:00")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="KEY=VALUE for a template variable; repeat for each"),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", help="IANA zone for times without an offset [default: SAMVERKAN_TIMEZONE]"
        ),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(
            "--audience", help="Who takes part, e.g. 'role=professional,manager' [default: all]"
        ),
    ] = None,
    steering: Annotated[
        list[str] | None,
        typer.Option("--steering", help="A steering group member who gets the reflection; repeat"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": …}.')] = False,
) -> None:
    """Launch a cycle. Every email of every stage is rendered first, for one participant of
    each language and role; any error stops the launch and nothing is created.

    \b
    Example:
      samverkan cycle launch learning-cycle --name "Spring 2027" --start 2027-01-20T09:00 \\
        --var workshop_at=2027-02-10T09:00 --var location="Stadshuset, Göteborg"
    """
    from flows.cycles.launch import launch_cycle

    settings = _settings()
    cycle_id = launch_cycle(
        _engine(settings),
        settings,
        template=template,
        name=name,
        start=start,
        variables=_parse_vars(var or []),
        timezone=timezone,
        audience=audience,
        steering=steering or [],
    )
    if as_json:
        _print_json({"id": cycle_id})
    else:
        typer.echo(cycle_id)


@cycle_app.command("list")
@handled
def cycle_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List cycles.

    \b
    Example:  samverkan cycle list
    """
    from store import queries
    from store.db import session_scope

    with session_scope(_engine(_settings())) as session:
        cycles = queries.list_cycles(session)
    data: list[dict[str, Any]] = [
        {
            "id": c.id,
            "name": c.name,
            "template": c.template,
            "status": str(c.status),
            "start": c.start_at.isoformat(),
            "timezone": c.timezone,
        }
        for c in cycles
    ]
    if as_json:
        _print_json(data)
    elif not data:
        typer.echo("no cycles yet: samverkan cycle launch --help")
    else:
        _table(
            [[str(d["id"]), d["name"], d["template"], d["status"], d["start"][:16]] for d in data],
            ["id", "name", "template", "status", "start (UTC)"],
        )


def _counts(messages: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(messages.items())) or "-"


@cycle_app.command("show")
@handled
def cycle_show(
    cycle_id: ShownId,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a cycle's plan: each stage's timing, due time, status and messages.

    \b
    Example:  samverkan cycle show 1
    """
    from flows.cycles.overview import cycle_overview

    data = cycle_overview(_engine(_settings()), cycle_id=cycle_id)
    if as_json:
        _print_json(data)
        return
    typer.echo(
        f"cycle {data['id']}: {data['name']} ({data['template']}), {data['status']}, "
        f"{data['participants']} participants, times in {data['timezone']}"
    )
    rows = []
    for s in data["stages"]:
        status = s["status"] + (
            " (needs approval)" if s["approval"] and s["status"] == "pending" else ""
        )
        rows.append(
            [
                s["key"],
                s["kind"],
                s["due"][:16].replace("T", " "),
                s["timing"],
                status,
                _counts(s["messages"]),
            ]
        )
    _table(rows, ["stage", "kind", "due", "timing", "status", "messages"])
    for s in data["stages"]:
        if s["note"]:
            typer.echo(f"note: {s['key']}: {s['note']}")
    for p in data["problems"]:
        typer.echo(f"problem: {p['stage']} to {p['to']}: {p['error']}")
    if data["unsubscribed"]:
        typer.echo(f"unsubscribed, no more mail to: {', '.join(data['unsubscribed'])}")


@app.command("drafts")
@handled
def drafts(
    cycle_id: ShownId,
    stage_key: Annotated[str, typer.Argument(metavar="STAGE_KEY", help="e.g. invitation")],
    participant: Annotated[
        str | None,
        typer.Option("--participant", help="Show only the message to this email"),
    ] = None,
) -> None:
    """Show the rendered drafts of a stage (or a preview, before it has run).

    \b
    Example:  samverkan drafts 1 invitation --participant anna@example.org
    """
    from flows.cycles.approve import stage_drafts

    settings = _settings()
    result = stage_drafts(
        _engine(settings), settings, cycle_id=cycle_id, key=stage_key, participant=participant
    )
    from flows.wording import plural

    count = plural(len(result.drafts), "message")
    kind = "stored" if result.stored else "previewed (nothing is drafted yet)"
    typer.echo(f"{count} {kind} for stage {stage_key}")
    for d in result.drafts:
        typer.echo("")
        typer.echo(
            f"To: {d.to_name} <{d.to_email}>   [{d.status}]"
            + ("  + calendar invite" if d.has_calendar else "")
        )
        typer.echo(f"Subject: {d.subject}")
        typer.echo("")
        typer.echo(d.text.rstrip())
        typer.echo("-" * 72)


@app.command("approve")
@handled
def approve(
    cycle_id: ShownId,
    stage_key: Annotated[str, typer.Argument(metavar="STAGE_KEY", help="e.g. invitation")],
    reason: Annotated[str | None, typer.Option("--reason", help="Kept in the audit log")] = None,
) -> None:
    """Approve a stage's drafts; they are sent on the next tick. Approving a stage that has
    not run yet approves it in advance.

    \b
    Example:  samverkan approve 1 invitation
    """
    from flows.cycles.approve import approve_stage

    typer.echo(approve_stage(_engine(_settings()), cycle_id=cycle_id, key=stage_key, reason=reason))


@app.command("audit")
@handled
def audit(
    cycle_id: ShownId,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every action and stage transition of a cycle, oldest first.

    \b
    Example:  samverkan audit 1
    """
    from store import queries
    from store.db import session_scope

    with session_scope(_engine(_settings())) as session:
        queries.get_cycle(session, cycle_id=cycle_id)
        entries = queries.audit_log(session, cycle_id=cycle_id)
    data: list[dict[str, Any]] = [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "stage": e.stage_key,
            "detail": e.detail,
            "reason": e.reason,
        }
        for e in entries
    ]
    if as_json:
        _print_json(data)
        return
    for d in data:
        stage = f" [{d['stage']}]" if d["stage"] else ""
        reason = f" (reason: {d['reason']})" if d["reason"] else ""
        typer.echo(f"{d['at'][:19]}  {d['actor']:<11} {d['action']}{stage}: {d['detail']}{reason}")


# changing a running cycle ------------------------------------------------------------------

CycleId = Annotated[int, typer.Argument(metavar="CYCLE", help="The cycle's id", callback=_cycle_id)]
StageKey = Annotated[str, typer.Argument(metavar="KEY", help="The stage's key, e.g. workshop")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the effects; change nothing.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Kept in the audit log.")]
Expect = Annotated[
    int | None,
    typer.Option(
        "--expect-version",
        help="Refuse if the plan's version is no longer this one (the version a --dry-run showed).",
    ),
]


def _report(effects: Any, dry_run: bool) -> None:
    for line in effects.lines():
        typer.echo(line)
    if dry_run:
        typer.echo(
            f"dry run: nothing was changed. To apply exactly this, add "
            f"--expect-version {effects.version[0]}"
        )


def _change(func: Callable[..., Any], dry_run: bool, **kwargs: Any) -> None:
    settings = _settings()
    _report(func(_engine(settings), settings, dry_run=dry_run, **kwargs), dry_run)


@stage_app.command("add")
@handled
def stage_add(
    cycle_id: CycleId,
    kind: Annotated[str, typer.Option("--kind", help="email, meeting, followup or reflection")],
    key: Annotated[str, typer.Option("--key", help="A new key, e.g. second-workshop")],
    at: Annotated[str | None, typer.Option("--at", help="When, ISO (cycle's zone)")] = None,
    after: Annotated[str | None, typer.Option("--after", help="Anchor stage")] = None,
    before: Annotated[str | None, typer.Option("--before", help="Anchor stage")] = None,
    offset: Annotated[str | None, typer.Option("--offset", help="e.g. 3d, 2h")] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="An email of the cycle's template, e.g. progress-note"),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", help='e.g. role=politician or org="Region Västra Götaland"'),
    ] = None,
    unless: Annotated[
        str | None,
        typer.Option("--unless", help="accepted, responded or answered:<stage>"),
    ] = None,
    approval: Annotated[bool, typer.Option("--approval", help="Drafts wait for approval")] = False,
    starts: Annotated[
        str | None,
        typer.Option("--starts", help="A meeting's start, ISO"),
    ] = None,
    duration: Annotated[str, typer.Option("--duration", help="A meeting's length")] = "2h",
    location: Annotated[str, typer.Option("--location", help="Where a meeting is")] = "",
    questions: Annotated[
        str | None,
        typer.Option("--questions", help="Follow-up question ids, comma-separated"),
    ] = None,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Add a stage to a running cycle, at a time or relative to another stage.

    \b
    Examples:
      samverkan stage add 1 --kind meeting --key second-workshop --after followup \\
        --offset 1d --starts 2027-03-10T13:00 --duration 3h --location "Stadshuset"
      samverkan stage add 1 --kind email --key politicians --template progress-note \\
        --audience role=politician --after workshop --offset 1d --dry-run
    """
    from flows.cycles.resequence import add_stage

    _change(
        add_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        kind=kind,
        at=at,
        after=after,
        before=before,
        offset=offset,
        template=template,
        audience=audience,
        unless=unless,
        approval=approval,
        starts=starts,
        duration=duration,
        location=location,
        questions=[q.strip() for q in questions.split(",")] if questions else None,
        reason=reason,
        expect_version=expect_version,
    )


@stage_app.command("move")
@handled
def stage_move(
    cycle_id: CycleId,
    key: StageKey,
    after: Annotated[str | None, typer.Option("--after", help="Put it after this stage")] = None,
    before: Annotated[str | None, typer.Option("--before", help="Put it before this stage")] = None,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Move a stage that has not run after or before another. A stage with a relative time
    takes the other stage as its new anchor.

    \b
    Example:  samverkan stage move 1 followup-reminder --after reflection --dry-run
    """
    from flows.cycles.resequence import move_stage

    _change(
        move_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        after=after,
        before=before,
        reason=reason,
        expect_version=expect_version,
    )


@stage_app.command("skip")
@handled
def stage_skip(
    cycle_id: CycleId,
    key: StageKey,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Skip a stage that has not run (its drafts, if any, are dropped).

    \b
    Example:  samverkan stage skip 1 workshop-reminder --reason "everyone has answered"
    """
    from flows.cycles.resequence import skip_stage

    _change(
        skip_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        reason=reason,
        expect_version=expect_version,
    )


@stage_app.command("edit")
@handled
def stage_edit(
    cycle_id: CycleId,
    key: StageKey,
    template: Annotated[str | None, typer.Option("--template", help="Another email")] = None,
    audience: Annotated[str | None, typer.Option("--audience", help="A new audience")] = None,
    unless: Annotated[
        str | None,
        typer.Option(
            "--unless", help="accepted, responded, answered:<stage>, or '' for nobody left out"
        ),
    ] = None,
    approval: Annotated[
        bool | None,
        typer.Option("--approval/--no-approval", help="Whether drafts wait for approval"),
    ] = None,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Change a stage that has not run: its email, audience, who is left out, or approval.
    Drafts waiting for approval are dropped and made again on the next tick.

    \b
    Example:  samverkan stage edit 1 followup --audience "role=professional,manager" --approval
    """
    from flows.cycles.resequence import edit_stage

    _change(
        edit_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        template=template,
        audience=audience,
        approval=approval,
        unless=unless,
        reason=reason,
        expect_version=expect_version,
    )


@stage_app.command("reschedule")
@handled
def stage_reschedule(
    cycle_id: CycleId,
    key: StageKey,
    at: Annotated[str, typer.Option("--at", help="New time, ISO (a meeting: its start)")],
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Give a stage a new time. For a meeting this moves the meeting itself; if it was
    already announced, everyone invited gets a calendar update, and the stages that follow it
    (reminders, follow-ups) move with it.

    \b
    Example:  samverkan stage reschedule 1 workshop --at 2027-02-17T09:00 --dry-run
    """
    from flows.cycles.resequence import reschedule_stage

    _change(
        reschedule_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        at=at,
        reason=reason,
        expect_version=expect_version,
    )


@stage_app.command("cancel")
@handled
def stage_cancel(
    cycle_id: CycleId,
    key: StageKey,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Cancel a stage. Cancelling an announced meeting sends everyone invited a calendar
    cancellation and cancels the reminders that depend on it.

    \b
    Example:  samverkan stage cancel 1 workshop --reason "the board meets that day"
    """
    from flows.cycles.resequence import cancel_stage

    _change(
        cancel_stage,
        dry_run,
        cycle_id=cycle_id,
        key=key,
        reason=reason,
        expect_version=expect_version,
    )


def _cycle_status(
    cycle_id: int, to: str, dry_run: bool, reason: str | None, expect_version: int | None
) -> None:
    from flows.cycles.resequence import set_cycle_status
    from store.models import CycleStatus

    _change(
        set_cycle_status,
        dry_run,
        cycle_id=cycle_id,
        to=CycleStatus(to),
        reason=reason,
        expect_version=expect_version,
    )


@cycle_app.command("pause")
@handled
def cycle_pause(
    cycle_id: CycleId, dry_run: DryRun = False, reason: Reason = None, expect_version: Expect = None
) -> None:
    """Pause a cycle: no stage runs until it is resumed.

    \b
    Example:  samverkan cycle pause 1 --reason "waiting for the board"
    """
    _cycle_status(cycle_id, "paused", dry_run, reason, expect_version)


@cycle_app.command("resume")
@handled
def cycle_resume(
    cycle_id: CycleId, dry_run: DryRun = False, reason: Reason = None, expect_version: Expect = None
) -> None:
    """Resume a paused cycle; stages that fell due meanwhile run on the next tick.

    \b
    Example:  samverkan cycle resume 1
    """
    _cycle_status(cycle_id, "running", dry_run, reason, expect_version)


@cycle_app.command("cancel")
@handled
def cycle_cancel(
    cycle_id: CycleId, dry_run: DryRun = False, reason: Reason = None, expect_version: Expect = None
) -> None:
    """Cancel a cycle: stages still to run are cancelled, unsent messages dropped, and
    announced meetings still ahead are cancelled in everyone's calendar.

    \b
    Example:  samverkan cycle cancel 1 --dry-run
    """
    _cycle_status(cycle_id, "cancelled", dry_run, reason, expect_version)


@cycle_app.command("add-participants")
@handled
def cycle_add_participants(
    cycle_id: CycleId,
    email: Annotated[
        list[str] | None,
        typer.Option("--email", help="A participant's email; repeat for each"),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", help='Everyone matching, e.g. org="Göteborgs Stad"'),
    ] = None,
    no_catch_up: Annotated[
        bool, typer.Option("--no-catch-up", help="Do not send them what others already got")
    ] = False,
    dry_run: DryRun = False,
    reason: Reason = None,
    expect_version: Expect = None,
) -> None:
    """Add late joiners to a cycle. They receive the invitation and the current invite of
    meetings still ahead, unless --no-catch-up.

    \b
    Example:  samverkan cycle add-participants 1 --email new.person@kommun.example
    """
    from flows.cycles.resequence import add_participants

    _change(
        add_participants,
        dry_run,
        cycle_id=cycle_id,
        emails=email,
        audience=audience,
        catch_up=not no_catch_up,
        reason=reason,
        expect_version=expect_version,
    )


@inbox_app.command("import")
@handled
def inbox_import(
    path: Annotated[Path, typer.Argument(help="An .eml or .ics file, a folder, or a Maildir")],
) -> None:
    """Record participants' answers from calendar replies (METHOD:REPLY). Replies to unknown
    meetings, from people not invited, or to an out-of-date invitation are listed, not
    recorded.

    \b
    Example:  samverkan inbox import ~/Maildir/samverkan-replies
    """
    from flows.people.inbox import import_replies

    report = import_replies(_engine(_settings()), path)
    for line in report.lines():
        typer.echo(line)


@app.command("report")
@handled
def report(
    cycle_id: ShownId,
    fmt: Annotated[str, typer.Option("--format", help="html or md")] = "html",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite --out even if it is not an earlier report"),
    ] = False,
) -> None:
    """The reflection report of a cycle: what was done, who took part, the indicators with
    their trend, and the participants' own words. Printed, or written with --out (which
    replaces only an earlier report, unless --force).

    Example:  samverkan report 1 --out reflection.html
    """
    from flows.reporting.report import build_report, is_report

    if out is not None and out.exists() and not force and not is_report(out):
        fail(
            f"{out} exists and is not a report samverkan wrote; not overwritten "
            "(use --force to overwrite it)"
        )
    settings = _settings()
    text = build_report(_engine(settings), settings, cycle_id, fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    # Written beside it and renamed, so that a failed write leaves the old file whole.
    partial = out.with_name(f".{out.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"wrote {out}")


@app.command("indicators")
@handled
def indicators(
    cycle: Annotated[
        list[int] | None,
        typer.Option(
            "--cycle", help="Only this cycle; repeat for more [default: all]", callback=_cycle_ids
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
) -> None:
    """Export the indicators, one row per cycle × organisation × role × indicator
    (schema samverkan.indicators/1, described in the README), for combining collaborations.

    Example:  samverkan indicators --format csv > indicators.csv
    """
    from flows.reporting import indicators as ind

    if fmt not in ("csv", "json"):
        fail(f"unknown format {fmt!r} (use csv or json)")
    settings = _settings()
    engine = _engine(settings)
    if cycle:
        from store import queries
        from store.db import session_scope

        with session_scope(engine) as session:
            for cycle_id in cycle:
                queries.get_cycle(session, cycle_id=cycle_id)
    rows = ind.compute(engine, cycle_ids=cycle, min_group=settings.min_group).rows()
    typer.echo(ind.to_csv(rows) if fmt == "csv" else ind.to_json(rows), nl=False)


@app.command("outbox")
@handled
def outbox(
    args: Annotated[
        list[str],
        typer.Argument(metavar="ID | resend ID", help="A cycle's id; or 'resend' and the id"),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="Only these: queued, sending, sent, retry, failed, uncertain…"
        ),
    ] = None,
    uncertain: Annotated[
        bool,
        typer.Option("--uncertain", help="With resend: the messages whose arrival is in doubt"),
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Kept in the audit log")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a cycle's messages and their outcomes, or resend the uncertain ones.

    A message is "uncertain" when the sender stopped, or the connection was lost, after it went
    out and before the server confirmed it: it may have arrived. Such messages are never sent
    again on their own; resend them when you have decided to.

    \b
    Examples:
      samverkan outbox 1 --status failed --status uncertain
      samverkan outbox resend 1 --uncertain
    """
    from messaging.outbox import listing, resend_uncertain

    engine = _engine(_settings())

    def digits(text: str) -> bool:  # int() takes more than ASCII digits, but not "²"
        return text.isascii() and text.isdigit()

    if args and args[0] == "resend":
        if len(args) != 2 or not digits(args[1]):
            fail("usage: samverkan outbox resend ID --uncertain")
        if not uncertain:
            fail("say what to resend: --uncertain")
        _cycle_exists(engine, _cycle_id(int(args[1])))
        n = resend_uncertain(engine, cycle_id=int(args[1]), reason=reason)
        typer.echo(f"queued {n} uncertain messages again; the next tick sends them")
        return
    if len(args) != 1 or not digits(args[0]):
        fail("usage: samverkan outbox ID [--status S] | samverkan outbox resend ID --uncertain")
    cycle_id = _cycle_id(int(args[0]))
    _cycle_exists(engine, cycle_id)
    rows = listing(engine, cycle_id=cycle_id, statuses=status)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo("no messages" + (f" with status {', '.join(status)}" if status else ""))
        return
    _table(
        [
            [
                str(r["id"]),
                str(r["stage"]),
                str(r["to"]),
                str(r["status"]),
                str(r["attempts"]),
                str(r["error"] or r["reply"] or "")[:60],
            ]
            for r in rows
        ],
        ["id", "stage", "to", "status", "tries", "reply or error"],
    )


def _cycle_exists(engine: Any, cycle_id: int) -> None:
    from store import queries
    from store.db import session_scope

    with session_scope(engine) as session:
        queries.get_cycle(session, cycle_id=cycle_id)


@app.command("serve")
@handled
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
) -> None:
    """Serve the participants' pages (follow-up answers, meeting RSVP). Set
    SAMVERKAN_BASE_URL to the address participants reach it by, so links in emails point here.

    \b
    Example:  samverkan serve --host 0.0.0.0 --port 8000
    """
    _in_range("--port", port, 1, 65535)
    import uvicorn

    from flows.web.app import create_app

    settings = _settings()
    _engine(settings)  # a bad database fails here, before the server starts
    typer.echo(
        f"serving participants' pages on http://{host}:{port} (links in emails use {settings.base})"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@app.command("tick")
@handled
def tick(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Pretend it is this time (ISO); default: the real time"),
    ] = None,
) -> None:
    """Run every stage that is due, then deliver the outbox. Run it from cron or a loop;
    with --now you can walk a cycle through weeks in seconds.

    \b
    Example:  samverkan tick --now 2027-02-08T09:00
    """
    from flows.cycles import plan

    settings = _settings()
    engine = _engine(settings)  # fail on a bad database before Prefect starts
    when = (
        plan.parse_when(now, plan.zone(settings.timezone), what="--now")
        if now
        else datetime.now(UTC)
    )
    from flows.orchestration import one_shot_tick

    for line in one_shot_tick(settings, engine, when).lines():
        typer.echo(line)


@app.command("deploy")
@handled
def deploy(
    pool: Annotated[
        str, typer.Option("--pool", help="Prefect work pool (a 'process' pool; made if missing)")
    ] = "samverkan",
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between scheduled ticks")
    ] = 60.0,
    senders: Annotated[
        int,
        typer.Option(
            "--senders", help="Deliver runs started per stage, each with its own SMTP connections"
        ),
    ] = 2,
) -> None:
    """Register samverkan with a Prefect server: a tick every --interval seconds, one advance
    run per due cycle, and deliver runs, all on the work pool --pool. Start workers on it
    with `samverkan worker --pool NAME`. Needs PREFECT_API_URL (README: 'Keeping it running').

    \b
    Example:  PREFECT_API_URL=http://127.0.0.1:4200/api samverkan deploy --pool samverkan
    """
    from flows.orchestration.deploy import register

    _in_range("--interval", interval, 5, 86400, " seconds")
    done = register(pool=pool, interval=interval, senders=senders)
    made = "created" if done.created_pool else "exists"
    typer.echo(f"work pool {done.pool} ({made}, type process)")
    for name in done.deployments:
        typer.echo(f"deployment {name}")
    typer.echo(f"ticks every {done.interval:g} s; start workers: samverkan worker --pool {pool}")


@app.command("worker")
@handled
def worker(
    pool: Annotated[
        str | None,
        typer.Option("--pool", help="Run a Prefect worker on this work pool (distributed mode)"),
    ] = None,
    every: Annotated[
        float, typer.Option("--every", help="Without --pool: seconds between ticks")
    ] = 60.0,
    limit: Annotated[
        int | None, typer.Option("--limit", help="With --pool: most flow runs at once")
    ] = None,
) -> None:
    """Keep samverkan running. Without --pool: tick every --every seconds in this process
    (embedded mode: Prefect starts once, not on every tick). With --pool: a Prefect worker
    that runs the deployments of `samverkan deploy` (distributed mode). Stop with Ctrl-C.

    \b
    Examples:
      samverkan worker --every 30
      PREFECT_API_URL=http://127.0.0.1:4200/api samverkan worker --pool samverkan
    """
    from flows.orchestration.deploy import preflight, run_embedded, run_pool_worker

    if pool is not None and limit is not None:
        _in_range("--limit", limit, 1, 1000, " runs")
    if pool is None:
        _in_range("--every", every, 1, 86400, " seconds")
    settings = _settings()
    preflight(settings)  # store, link key and mail server, before any run is taken
    if pool is not None:
        raise typer.Exit(run_pool_worker(pool, limit))
    from flows.orchestration.flows import run_tick

    typer.echo(f"ticking every {every:g} s (Ctrl-C stops after the current tick)")
    run_embedded(every=every, say=typer.echo, tick=lambda now: run_tick(now).lines())


@app.command("demo")
@handled
def demo(
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to put the demo's database and mail [default: a new folder]"
        ),
    ] = None,
) -> None:
    """Walk a whole learning cycle on an example network, in a fresh folder, with a simulated
    clock: import, launch, approve, invite, remind, follow up, reflect.

    \b
    Example:  samverkan demo
    """
    from flows.cli.demo import run_demo

    run_demo(folder, echo=typer.echo)


def main() -> None:
    try:
        app()
    except SamverkanError as exc:  # raised outside a command, e.g. while parsing settings
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, with a way to see more
        if os.environ.get("SAMVERKAN_DEBUG"):
            raise
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            typer.echo(f"error: database: {first}", err=True)
            sys.exit(2)
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} "
            "(run again with SAMVERKAN_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
