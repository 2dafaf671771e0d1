"""``samverkan participants …``: import, list, export and erase participants."""

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._common import (
    AsJson,
    AuditReason,
    fail,
    get_settings,
    group_help,
    handled,
    open_engine,
    print_json,
    table,
)

participants_app = typer.Typer(
    help=group_help(
        "Import and list the network's participants.", "samverkan participants import network.csv"
    ),
    no_args_is_help=True,
)


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

    settings = get_settings()
    result = import_participants(open_engine(settings), file)
    typer.echo(f"imported {result.created} new and updated {result.updated} participants")


@participants_app.command("list")
@handled
def participants_list(
    as_json: AsJson = False,
) -> None:
    """List participants with their organisation, role and language, and whether they still
    get mail (not those who unsubscribed, were erased, or whose address bounced: a delivery
    report said mail to it never arrived; importing them with a new address clears it).

    \b
    Example:  samverkan participants list --json
    """
    from flows.people.participants import list_network

    listed = list_network(open_engine(get_settings()))
    data: list[dict[str, Any]] = [
        {
            "name": p.name,
            "email": p.email,
            "organisation": p.organisation,
            "role": p.role,
            "language": p.language,
            "erased": p.erased,
            "unsubscribed": p.unsubscribed,
            "bounced": p.bounced,
        }
        for p in listed
    ]
    if as_json:
        print_json(data)
        return
    if not data:
        typer.echo("no participants yet: samverkan participants import FILE.csv")
        return

    table(
        [[p.name, p.email, p.organisation, p.role, p.language, p.mail] for p in listed],
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

    print_json(export_person(open_engine(get_settings()), email=email))


@participants_app.command("erase")
@handled
def participants_erase(
    email: Annotated[str, typer.Argument(help="The person's email")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    reason: AuditReason = None,
) -> None:
    """Erase one person's personal data (name, email, written answers, messages to them).
    Their scale answers stay as anonymous numbers; they get no further mail.

    \b
    Example:  samverkan participants erase anna@example.org --yes --reason "asked by phone"
    """
    from flows.people.privacy import erase_person

    if not yes and not typer.confirm(f"Erase everything personal about {email}?"):
        fail("nothing was erased")
    done = erase_person(open_engine(get_settings()), email=email, reason=reason)
    typer.echo(
        f"erased {email}: {done['written_answers']} written answers and "
        f"{done['messages']} messages cleared, {done['dropped']} unsent messages dropped"
    )
    if not done["log_emptied"]:
        typer.echo(
            "note: another process is reading the database, so its write-ahead log (which "
            "still holds the old rows) is emptied only when that process stops or writes"
        )
