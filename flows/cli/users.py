"""``samverkan users …``: the workspace's accounts (coordinators, signers, viewers)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._common import (
    AsJson,
    fail,
    get_settings,
    group_help,
    handled,
    open_engine,
    print_json,
    table,
)

users_app = typer.Typer(
    help=group_help(
        "Accounts that sign in to the workspace (samverkan serve, /workspace/).",
        "samverkan users add anna@kommun.se --role coordinator",
    ),
    no_args_is_help=True,
)

Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email address")]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the password from this file's first line (- for standard input). "
        "Without it, the password is asked for.",
    ),
]


def _password(source: Path | None) -> str:
    """The new password, from a prompt or a file: never from the command line, which other
    users of the machine can read in the process list and the shell's history."""
    if source is None:
        if not sys.stdin.isatty():
            fail("no terminal to ask for the password: give --password-file FILE (or -)")
        first = typer.prompt("New password", hide_input=True)
        again = typer.prompt("Again", hide_input=True)
        if first != again:
            fail("the two passwords differ; nothing was changed")
        return str(first)
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}")
    lines = text.splitlines()
    if not lines or not lines[0]:
        fail(f"{source} has no password on its first line")
    return lines[0]


@users_app.command("add")
@handled
def users_add(
    email: Email,
    role: Annotated[
        str, typer.Option("--role", help="coordinator (everything), signer or viewer (reads)")
    ],
    org: Annotated[
        str | None, typer.Option("--org", help="The organisation a signer signs for")
    ] = None,
    password_file: PasswordFile = None,
    no_password: Annotated[
        bool,
        typer.Option("--no-password", help="Set the password later with: samverkan users password"),
    ] = False,
) -> None:
    """Add an account. Its password is asked for (or read with --password-file).

    \b
    Examples:
      samverkan users add anna@kommun.se --role coordinator
      samverkan users add lars@fk.se --role signer --org Försäkringskassan --password-file pw.txt
      samverkan users add styrgrupp@region.se --role viewer --no-password
    """
    from flows.people.accounts import add_account, check_password

    password = None
    if not no_password:
        password = check_password(_password(password_file))
    engine = open_engine(get_settings())
    account = add_account(engine, email=email, role=role, organisation=org, password=password)
    where = f" of {account.organisation}" if account.organisation else ""
    typer.echo(f"added {account.email} as {account.role}{where}")
    if password is None:
        typer.echo(f"it cannot sign in until: samverkan users password {account.email}")


@users_app.command("list")
@handled
def users_list(as_json: AsJson = False) -> None:
    """List the accounts with their role, organisation and whether they can sign in.

    \b
    Example:  samverkan users list --json
    """
    from flows.people.accounts import list_accounts

    accounts = list_accounts(open_engine(get_settings()))
    rows: list[dict[str, str]] = [
        {
            "email": a.email,
            "role": str(a.role),
            "organisation": a.organisation or "",
            "state": "disabled" if a.disabled else ("active" if a.password_hash else "no password"),
            "created": a.created_at.isoformat(timespec="seconds"),
        }
        for a in accounts
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no accounts yet; add one: samverkan users add EMAIL --role coordinator")
        return
    table(
        [[r["email"], r["role"], r["organisation"], r["state"]] for r in rows],
        ["email", "role", "organisation", "state"],
    )


@users_app.command("disable")
@handled
def users_disable(email: Email) -> None:
    """Disable an account: it cannot sign in, and its open sessions end at once.

    \b
    Example:  samverkan users disable lars@fk.se
    """
    from flows.people.accounts import disable_account

    ended = disable_account(open_engine(get_settings()), email=email)
    typer.echo(f"disabled {email.strip()}; {ended} open session(s) ended")


@users_app.command("password")
@handled
def users_password(email: Email, password_file: PasswordFile = None) -> None:
    """Set an account's password (asked for, or read with --password-file); every session
    of the account ends.

    \b
    Examples:
      samverkan users password anna@kommun.se
      samverkan users password anna@kommun.se --password-file - < pw.txt
    """
    from flows.people.accounts import check_password, set_password

    engine = open_engine(get_settings())
    ended = set_password(engine, email=email, password=check_password(_password(password_file)))
    typer.echo(f"password set for {email.strip()}; {ended} open session(s) ended")
