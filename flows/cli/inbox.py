"""``samverkan inbox …``: the coordinator's mailbox (calendar replies, bounces, auto-replies)."""

from pathlib import Path
from typing import Annotated

import typer

from flows.cli._common import get_settings, group_help, handled, open_engine

inbox_app = typer.Typer(
    help=group_help(
        "Read the coordinator's mailbox: calendar replies, bounces and auto-replies.",
        "samverkan inbox fetch --imap imaps://samverkan@mail.example.org/INBOX",
    ),
    no_args_is_help=True,
)

ImapUrl = Annotated[
    str | None,
    typer.Option(
        "--imap",
        help="imaps://user@host/INBOX (TLS) or imap://user@host/INBOX (STARTTLS); default "
        "SAMVERKAN_IMAP_URL. The password comes from SAMVERKAN_IMAP_PASSWORD or "
        "SAMVERKAN_IMAP_PASSWORD_FILE.",
        show_default=False,
    ),
]


def _say(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@inbox_app.command("import")
@handled
def inbox_import(
    path: Annotated[Path, typer.Argument(help="An .eml or .ics file, a folder, or a Maildir")],
) -> None:
    """Read saved messages: calendar replies (METHOD:REPLY) record answers, delivery reports
    mark bounced addresses, auto-replies are recorded but never count as answers. What it
    does not understand, or cannot tie to a message samverkan sent, is listed, not recorded.
    A message read before (the same bytes) changes nothing.

    \b
    Example:  samverkan inbox import ~/Maildir/samverkan-replies
    """
    from flows.people.inbox import import_replies

    settings = get_settings()
    report = import_replies(
        open_engine(settings), path, soft_bounce_limit=settings.soft_bounce_limit
    )
    _say(report.lines())


@inbox_app.command("fetch")
@handled
def inbox_fetch(imap: ImapUrl = None) -> None:
    """Read the IMAP mailbox once. Handled messages are flagged (\\Seen and
    $SamverkanHandled) or moved to SAMVERKAN_IMAP_MOVE_TO; the rest stay unread for you.
    Nothing is deleted, and a message is never handled twice. Every tick does this too when
    SAMVERKAN_IMAP_URL is set.

    \b
    Example:  SAMVERKAN_IMAP_PASSWORD_FILE=~/.samverkan-imap \\
                samverkan inbox fetch --imap imaps://samverkan@mail.example.org/INBOX
    """
    from flows.people.imap import fetch

    settings = get_settings()

    def progress(done: int, total: int) -> None:
        if total > 50:
            typer.echo(f"read {done} of {total} messages", err=True)

    _say(fetch(open_engine(settings), settings, url=imap, progress=progress).lines())


@inbox_app.command("watch")
@handled
def inbox_watch(imap: ImapUrl = None) -> None:
    """Read the IMAP mailbox, then wait for new mail (IDLE, or every
    SAMVERKAN_IMAP_POLL_SECONDS where the server has no IDLE) and read it as it comes, until
    stopped with Ctrl-C. A lost connection is said in one line and opened again.

    \b
    Example:  samverkan inbox watch --imap imap://samverkan@mail.example.org/INBOX
    """
    from flows.people.imap import watch

    settings = get_settings()
    try:
        watch(open_engine(settings), settings, url=imap, say=typer.echo)
    except KeyboardInterrupt:
        typer.echo("stopped")
