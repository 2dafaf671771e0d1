"""``samverkan drafts`` and ``samverkan approve``: read a stage's messages, then let them go."""

from typing import Annotated

import typer

from flows.cli._common import AuditReason, ShownId, get_settings, handled, open_engine


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

    settings = get_settings()
    result = stage_drafts(
        open_engine(settings), settings, cycle_id=cycle_id, key=stage_key, participant=participant
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


@handled
def approve(
    cycle_id: ShownId,
    stage_key: Annotated[str, typer.Argument(metavar="STAGE_KEY", help="e.g. invitation")],
    reason: AuditReason = None,
) -> None:
    """Approve a stage's drafts; they are sent on the next tick. Approving a stage that has
    not run yet approves it in advance.

    \b
    Example:  samverkan approve 1 invitation
    """
    from flows.cycles.approve import approve_stage

    settings = get_settings()
    engine = open_engine(settings)
    typer.echo(
        approve_stage(engine, cycle_id=cycle_id, key=stage_key, reason=reason, settings=settings)
    )
