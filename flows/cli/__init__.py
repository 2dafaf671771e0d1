"""The ``samverkan`` command: parse, call one library function, print.

Each group of commands has its module here; this one puts them together in the order
``samverkan --help`` lists them. Our own errors become one line on stderr and exit status 2;
nothing here imports Prefect unless the command runs a flow (tick, worker, deploy, demo).
"""

import os
import sys
from typing import Annotated

import typer

from flows.cli import (
    approval,
    cycles,
    inbox,
    outbox,
    participants,
    reports,
    signoff,
    stages,
    templates,
    users,
    worker,
)
from store.errors import SamverkanError

app = typer.Typer(
    name="samverkan",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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


# Listed by --help in this order, the commands first and then the groups.
app.command("drafts")(approval.drafts)
app.command("approve")(approval.approve)
app.command("audit")(cycles.audit)
app.command("report")(reports.report)
app.command("outbox")(outbox.outbox)
app.command("serve")(worker.serve)
app.command("tick")(worker.tick)
app.command("deploy")(worker.deploy)
app.command("worker")(worker.worker)
app.command("demo")(worker.demo)

app.add_typer(participants.participants_app, name="participants")
app.add_typer(templates.templates_app, name="templates")
app.add_typer(cycles.cycle_app, name="cycle")
app.add_typer(stages.stage_app, name="stage")
app.add_typer(signoff.signoff_app, name="signoff")
app.add_typer(inbox.inbox_app, name="inbox")
app.add_typer(users.users_app, name="users")
app.add_typer(reports.indicators_app, name="indicators")


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
