"""``samverkan cycle …`` and ``samverkan audit``: launch, list and show cycles, pause,
resume or cancel them, add late joiners, and read what was done."""

from typing import Annotated, Any

import typer

from flows.cli._common import (
    AsJson,
    CycleId,
    PlanChange,
    ShownId,
    fail,
    get_settings,
    group_help,
    handled,
    open_engine,
    plan_change,
    print_json,
    table,
)

cycle_app = typer.Typer(
    help=group_help(
        "Launch, list, show, pause, resume and cancel cycles.", "samverkan cycle show 1"
    ),
    no_args_is_help=True,
)


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            fail(f"--var takes KEY=VALUE, not {pair!r}")
        values[key.strip()] = value
    return values


def _parse_signoff(items: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in items:
        key, eq, org = item.partition("=")
        if not eq or not key.strip() or not org.strip():
            fail(f"--signoff {item!r}: use STAGE=ORGANISATION, e.g. invitation=Försäkringskassan")
        found.setdefault(key.strip(), []).append(org.strip())
    return found


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
    signoff: Annotated[
        list[str] | None,
        typer.Option(
            "--signoff",
            metavar="STAGE=ORG",
            help="An organisation that must sign what a stage sends, e.g. "
            "invitation=Försäkringskassan; repeat (added to the template's)",
        ),
    ] = None,
    fallback_language: Annotated[
        str | None,
        typer.Option(
            "--fallback-language",
            metavar="TAG",
            help="What participants get whose language the template has no emails in, e.g. "
            "en or sv; without it such a launch is refused",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": …}.')] = False,
) -> None:
    """Launch a cycle. Every email of every stage is rendered first, for one participant of
    each language and role; any error stops the launch and nothing is created. A language
    some email is not written in is named on stderr with what those participants get.

    \b
    Example:
      samverkan cycle launch learning-cycle --name "Spring 2027" --start 2027-01-20T09:00 \\
        --var workshop_at=2027-02-10T09:00 --var location="Stadshuset, Göteborg"
    """
    from flows.cycles.launch import launch_cycle

    settings = get_settings()
    notes: list[str] = []
    cycle_id = launch_cycle(
        open_engine(settings),
        settings,
        template=template,
        name=name,
        start=start,
        variables=_parse_vars(var or []),
        timezone=timezone,
        audience=audience,
        steering=steering or [],
        signoff=_parse_signoff(signoff or []),
        fallback_language=fallback_language,
        notes=notes,
    )
    for line in notes:
        typer.echo(line, err=True)
    if as_json:
        print_json({"id": cycle_id})
    else:
        typer.echo(cycle_id)


@cycle_app.command("list")
@handled
def cycle_list(
    as_json: AsJson = False,
) -> None:
    """List cycles.

    \b
    Example:  samverkan cycle list
    """
    from store import queries
    from store.db import session_scope

    with session_scope(open_engine(get_settings())) as session:
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
        print_json(data)
    elif not data:
        typer.echo("no cycles yet: samverkan cycle launch --help")
    else:
        table(
            [[str(d["id"]), d["name"], d["template"], d["status"], d["start"][:16]] for d in data],
            ["id", "name", "template", "status", "start (UTC)"],
        )


def _counts(messages: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(messages.items())) or "-"


@cycle_app.command("show")
@handled
def cycle_show(
    cycle_id: ShownId,
    as_json: AsJson = False,
) -> None:
    """Show a cycle's plan: each stage's timing, due time, status and messages.

    \b
    Example:  samverkan cycle show 1
    """
    from flows.cycles.overview import cycle_overview

    data = cycle_overview(open_engine(get_settings()), cycle_id=cycle_id)
    if as_json:
        print_json(data)
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
    table(rows, ["stage", "kind", "due", "timing", "status", "messages"])
    for s in data["stages"]:
        if s["note"]:
            typer.echo(f"note: {s['key']}: {s['note']}")
    for s in data["stages"]:
        if s["signoff"]:
            _say_signoff(s["key"], s["signoff"])
    for p in data["problems"]:
        typer.echo(f"problem: {p['stage']} to {p['to']}: {p['error']}")
    if data["unsubscribed"]:
        typer.echo(f"unsubscribed, no more mail to: {', '.join(data['unsubscribed'])}")
    if data["bounced"]:
        typer.echo(
            f"{len(data['bounced'])} left out: address bounced (later stages skip them; "
            "a new address, by participants import with previous_email, clears it):"
        )
        for b in data["bounced"]:
            typer.echo(f"  {b['to']}: {b['reason']}")


def _say_signoff(key: str, so: dict[str, Any]) -> None:
    for d in so["signed"]:
        typer.echo(
            f"signoff: {key}: {d['organisation']} signed {d['language']} {d['hash'][:12]} "
            f"by {d['by']} at {d['at'][:16].replace('T', ' ')} UTC"
        )
    for org, languages in so["missing"].items():
        typer.echo(f"signoff: {key}: missing {org} ({', '.join(languages)})")
    for c in so["change_requests"]:
        typer.echo(f"signoff: {key}: change asked by {c['by']} ({c['organisation']}): {c['text']}")
    if so["void"]:
        typer.echo(f"signoff: {key}: {so['void']} void (see: samverkan signoff status)")


@handled
def audit(
    cycle_id: ShownId,
    as_json: AsJson = False,
) -> None:
    """Show every action and stage transition of a cycle, oldest first.

    \b
    Example:  samverkan audit 1
    """
    from flows.cycles.overview import audit_entries

    data = audit_entries(open_engine(get_settings()), cycle_id=cycle_id)
    if as_json:
        print_json(data)
        return
    for d in data:
        stage = f" [{d['stage']}]" if d["stage"] else ""
        reason = f" (reason: {d['reason']})" if d["reason"] else ""
        typer.echo(f"{d['at'][:19]}  {d['actor']:<11} {d['action']}{stage}: {d['detail']}{reason}")


def _cycle_status(cycle_id: int, to: str) -> PlanChange:
    from flows.cycles.resequence import set_cycle_status
    from store.models import CycleStatus

    return PlanChange(set_cycle_status, cycle_id=cycle_id, to=CycleStatus(to))


@cycle_app.command("pause")
@handled
@plan_change
def cycle_pause(cycle_id: CycleId) -> PlanChange:
    """Pause a cycle: no stage runs until it is resumed.

    \b
    Example:  samverkan cycle pause 1 --reason "waiting for the board"
    """
    return _cycle_status(cycle_id, "paused")


@cycle_app.command("resume")
@handled
@plan_change
def cycle_resume(cycle_id: CycleId) -> PlanChange:
    """Resume a paused cycle; stages that fell due meanwhile run on the next tick.

    \b
    Example:  samverkan cycle resume 1
    """
    return _cycle_status(cycle_id, "running")


@cycle_app.command("cancel")
@handled
@plan_change
def cycle_cancel(cycle_id: CycleId) -> PlanChange:
    """Cancel a cycle: stages still to run are cancelled, unsent messages dropped, and
    announced meetings still ahead are cancelled in everyone's calendar.

    \b
    Example:  samverkan cycle cancel 1 --dry-run
    """
    return _cycle_status(cycle_id, "cancelled")


@cycle_app.command("add-participants")
@handled
@plan_change
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
) -> PlanChange:
    """Add late joiners to a cycle. They receive the invitation and the current invite of
    meetings still ahead, unless --no-catch-up.

    \b
    Example:  samverkan cycle add-participants 1 --email new.person@kommun.example
    """
    from flows.cycles.resequence import add_participants

    return PlanChange(
        add_participants,
        cycle_id=cycle_id,
        emails=email,
        audience=audience,
        catch_up=not no_catch_up,
    )
