"""``samverkan signoff …``: where a stage's sign-off by the agencies stands, and signing."""

from typing import Annotated, Any

import typer

from flows.cli._common import (
    AsJson,
    ShownId,
    StageKey,
    get_settings,
    group_help,
    handled,
    open_engine,
    print_json,
    table,
)

signoff_app = typer.Typer(
    help=group_help(
        "Sign-off by the organisations a stage names: status, sign, ask for a change.",
        "samverkan signoff status 1 invitation",
    ),
    no_args_is_help=True,
)

AsEmail = Annotated[
    str,
    typer.Option("--as", metavar="EMAIL", help="The signer's workspace account (an email)"),
]


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


@signoff_app.command("status")
@handled
def signoff_status(
    cycle_id: ShownId,
    key: StageKey,
    show_texts: Annotated[
        bool,
        typer.Option(
            "--texts",
            help="Print each text too: subject, plain text and calendar line, the "
            "personal parts as markers such as ⟦first_name⟧",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show the texts a stage sends (by hash), who signed which when, and what is missing.

    \b
    Examples:
      samverkan signoff status 1 invitation
      samverkan signoff status 1 invitation --texts   # read them before signing
      samverkan signoff status 1 invitation --json
    """
    from flows.cycles.signoff import signoff_status as status_of

    settings = get_settings()
    st = status_of(open_engine(settings), settings, cycle_id=cycle_id, key=key)
    if as_json:
        print_json(st.as_json())
        return
    state = "signed by all" if st.complete else f"waiting for {st.waiting_line()}"
    late = " (overdue: not sent)" if st.overdue else ""
    typer.echo(f"{st.stage} of cycle {st.cycle_id}: {state}; due {_when(st.due)}{late}")
    table(
        [[t.short, t.language, ", ".join(r or "-" for r in t.roles), t.subject] for t in st.texts],
        ["text", "language", "roles", "subject"],
    )
    if show_texts:
        from messaging.links import hide

        for t in st.texts:
            typer.echo("")
            typer.echo(f"--- text {t.content_hash} ({t.language}; {', '.join(t.roles)})")
            typer.echo(f"Subject: {t.subject}")
            if t.calendar:
                typer.echo(f"Calendar: {t.calendar}")
            typer.echo("")
            typer.echo(hide(t.text).rstrip())
        typer.echo("")
    for org in st.organisations:
        for s in org.signed:
            typer.echo(
                f"signed:  {org.organisation}: {s.language} {s.content_hash[:12]} by {s.account} "
                f"at {_when(s.signed_at.astimezone(st.due.tzinfo))}"
            )
        if org.missing:
            langs = ", ".join(f"{t.language} {t.short}" for t in org.missing)
            asked = ", ".join(org.signers) or "nobody: add a signer with samverkan users add"
            typer.echo(f"missing: {org.organisation}: {langs} (asked: {asked})")
    for s in st.signatures:
        if s.void_at is not None:
            typer.echo(
                f"void:    {s.organisation}: {s.content_hash[:12]} by {s.account}: {s.void_reason}"
            )
    for c in st.comments:
        who = f"{c.author} ({c.organisation})" if c.organisation else c.author
        typer.echo(f"comment: {_when(c.at.astimezone(st.due.tzinfo))} {who}: {c.text}")
    if st.complete and st.approval_required and not st.approved:
        typer.echo(f"next: the coordinator approves: samverkan approve {st.cycle_id} {st.stage}")


@signoff_app.command("sign")
@handled
def signoff_sign(
    cycle_id: ShownId,
    key: StageKey,
    email: AsEmail,
    text: Annotated[
        list[str] | None,
        typer.Option(
            "--text",
            metavar="HASH",
            help="A text you read (its hash from signoff status); repeat for each. If the "
            "stage would now send anything else, nothing is signed",
        ),
    ] = None,
) -> None:
    """Sign, for the signer's organisation, every text of the stage as it would be sent now
    (read them first: samverkan signoff status, or the workspace's sign-off page).

    \b
    Example:  samverkan signoff sign 1 invitation --as lars@forsakringskassan.example \\
                --text 0fbbe2fad405 --text 6a0dc402609b
    """
    from flows.cycles.signoff import sign

    settings = get_settings()
    typer.echo(
        sign(open_engine(settings), settings, cycle_id=cycle_id, key=key, email=email, seen=text)
    )


@signoff_app.command("request-change")
@handled
def signoff_request_change(
    cycle_id: ShownId,
    key: StageKey,
    email: AsEmail,
    comment: Annotated[str, typer.Option("--comment", help="What should change, and why")],
) -> None:
    """Ask for a change to what the stage sends; the comment is kept with the stage and the
    coordinator is emailed.

    \b
    Example:  samverkan signoff request-change 1 invitation --as lars@fk.example \\
                --comment "Say that the workshop is also open to managers"
    """
    from flows.cycles.signoff import request_change

    settings = get_settings()
    typer.echo(
        request_change(
            open_engine(settings),
            settings,
            cycle_id=cycle_id,
            key=key,
            email=email,
            comment=comment,
        )
    )
