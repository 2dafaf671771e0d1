"""``samverkan inbox …``: participants' calendar replies."""

from pathlib import Path
from typing import Annotated

import typer

from flows.cli._common import get_settings, group_help, handled, open_engine

inbox_app = typer.Typer(
    help=group_help(
        "Read participants' calendar replies.", "samverkan inbox import ~/Maildir/replies"
    ),
    no_args_is_help=True,
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

    report = import_replies(open_engine(get_settings()), path)
    for line in report.lines():
        typer.echo(line)
