"""``samverkan outbox``: a cycle's messages and their outcomes, and resending the uncertain
ones."""

from typing import Annotated, Any

import typer

from flows.cli._common import (
    AsJson,
    AuditReason,
    check_cycle_id,
    fail,
    get_settings,
    handled,
    open_engine,
    print_json,
    table,
)


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
    reason: AuditReason = None,
    as_json: AsJson = False,
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

    engine = open_engine(get_settings())

    def digits(text: str) -> bool:  # int() takes more than ASCII digits, but not "²"
        return text.isascii() and text.isdigit()

    if args and args[0] == "resend":
        if len(args) != 2 or not digits(args[1]):
            fail("usage: samverkan outbox resend ID --uncertain")
        if not uncertain:
            fail("say what to resend: --uncertain")
        _cycle_exists(engine, check_cycle_id(int(args[1])))
        n = resend_uncertain(engine, cycle_id=int(args[1]), reason=reason)
        typer.echo(f"queued {n} uncertain messages again; the next tick sends them")
        return
    if len(args) != 1 or not digits(args[0]):
        fail("usage: samverkan outbox ID [--status S] | samverkan outbox resend ID --uncertain")
    cycle_id = check_cycle_id(int(args[0]))
    _cycle_exists(engine, cycle_id)
    rows = listing(engine, cycle_id=cycle_id, statuses=status)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no messages" + (f" with status {', '.join(status)}" if status else ""))
        return
    table(
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
