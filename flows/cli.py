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
    help=(
        "Run facilitated collaboration cycles between organisations: invitations, workshops "
        "with calendar invites, reminders, follow-up questions and reflection.\n\n"
        "Example:  samverkan demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
participants_app = typer.Typer(
    help="Import and list the network's participants.", no_args_is_help=True
)
templates_app = typer.Typer(help="List and check process templates.", no_args_is_help=True)
cycle_app = typer.Typer(help="Launch, list and show cycles.", no_args_is_help=True)
app.add_typer(participants_app, name="participants")
app.add_typer(templates_app, name="templates")
app.add_typer(cycle_app, name="cycle")


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

    Example:  samverkan participants import network.csv
    """
    from flows.participants import import_participants

    settings = _settings()
    result = import_participants(_engine(settings), file)
    typer.echo(f"imported {result.created} new and updated {result.updated} participants")


@participants_app.command("list")
@handled
def participants_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List participants with their organisation, role and language.

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
        }
        for p, o in rows
    ]
    if as_json:
        _print_json(data)
        return
    if not data:
        typer.echo("no participants yet: samverkan participants import FILE.csv")
        return
    _table(
        [[d["name"], d["email"], d["organisation"], d["role"], d["language"]] for d in data],
        ["name", "email", "organisation", "role", "language"],
    )


# templates ---------------------------------------------------------------------------------


@templates_app.command("list")
@handled
def templates_list() -> None:
    """List the process templates that cycles can be launched from.

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

    Example:  samverkan templates validate process_templates/learning-cycle
    """
    from flows.validation import validate_template

    settings = _settings()
    report = validate_template(settings, path)
    typer.echo(report)


@templates_app.command("schema")
@handled
def templates_schema() -> None:
    """Print the JSON schema of process.yaml, for editors.

    Example:  samverkan templates schema > process.schema.json
    """
    from flows.templates import json_schema

    _print_json(json_schema())


# cycles ------------------------------------------------------------------------------------


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
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": …}.')] = False,
) -> None:
    """Launch a cycle. Every email is rendered for every participant first; any error stops
    the launch and nothing is created.

    Example:
      samverkan cycle launch learning-cycle --name "Spring 2027" --start 2027-01-20T09:00
        --var workshop_at=2027-02-10T09:00 --var location="Stadshuset, Göteborg"
    """
    from flows.coordinator import launch_cycle

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
    cycle_id: Annotated[int, typer.Argument(metavar="ID", help="The cycle's id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a cycle's plan: each stage's timing, due time, status and messages.

    Example:  samverkan cycle show 1
    """
    from flows.coordinator import cycle_overview

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


@app.command("drafts")
@handled
def drafts(
    cycle_id: Annotated[int, typer.Argument(metavar="ID", help="The cycle's id")],
    stage_key: Annotated[str, typer.Argument(metavar="STAGE_KEY", help="e.g. invitation")],
    participant: Annotated[
        str | None,
        typer.Option("--participant", help="Show only the message to this email"),
    ] = None,
) -> None:
    """Show the rendered drafts of a stage (or a preview, before it has run).

    Example:  samverkan drafts 1 invitation --participant anna@example.org
    """
    from flows.coordinator import stage_drafts

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
    cycle_id: Annotated[int, typer.Argument(metavar="ID", help="The cycle's id")],
    stage_key: Annotated[str, typer.Argument(metavar="STAGE_KEY", help="e.g. invitation")],
    reason: Annotated[str | None, typer.Option("--reason", help="Kept in the audit log")] = None,
) -> None:
    """Approve a stage's drafts; they are sent on the next tick. Approving a stage that has
    not run yet approves it in advance.

    Example:  samverkan approve 1 invitation
    """
    from flows.coordinator import approve_stage

    typer.echo(approve_stage(_engine(_settings()), cycle_id=cycle_id, key=stage_key, reason=reason))


@app.command("audit")
@handled
def audit(
    cycle_id: Annotated[int, typer.Argument(metavar="ID", help="The cycle's id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every action and stage transition of a cycle, oldest first.

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

    Example:  samverkan tick --now 2027-02-08T09:00
    """
    from flows import plan

    settings = _settings()
    _engine(settings)  # fail on a bad database before Prefect starts
    when = (
        plan.parse_when(now, plan.zone(settings.timezone), what="--now")
        if now
        else datetime.now(UTC)
    )
    from flows.cycle import run_tick

    for line in run_tick(when).lines():
        typer.echo(line)


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

    Example:  samverkan demo
    """
    from flows.demo import run_demo

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
