"""``samverkan stage …``: change the stages of a running cycle."""

from typing import Annotated

import typer

from flows.cli._common import CycleId, PlanChange, StageKey, group_help, handled, plan_change

stage_app = typer.Typer(
    help=group_help(
        "Change the stages of a running cycle (each with --dry-run).",
        "samverkan stage skip 1 workshop-reminder --dry-run",
    ),
    no_args_is_help=True,
)


@stage_app.command("add")
@handled
@plan_change
def stage_add(
    cycle_id: CycleId,
    kind: Annotated[str, typer.Option("--kind", help="email, meeting, followup or reflection")],
    key: Annotated[str, typer.Option("--key", help="A new key, e.g. second-workshop")],
    at: Annotated[str | None, typer.Option("--at", help="When, ISO (cycle's zone)")] = None,
    after: Annotated[str | None, typer.Option("--after", help="Anchor stage")] = None,
    before: Annotated[str | None, typer.Option("--before", help="Anchor stage")] = None,
    offset: Annotated[str | None, typer.Option("--offset", help="e.g. 3d, 2h")] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="An email of the cycle's template, e.g. progress-note"),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", help='e.g. role=politician or org="Region Västra Götaland"'),
    ] = None,
    unless: Annotated[
        str | None,
        typer.Option("--unless", help="accepted, responded or answered:<stage>"),
    ] = None,
    approval: Annotated[bool, typer.Option("--approval", help="Drafts wait for approval")] = False,
    starts: Annotated[
        str | None,
        typer.Option("--starts", help="A meeting's start, ISO"),
    ] = None,
    duration: Annotated[str, typer.Option("--duration", help="A meeting's length")] = "2h",
    location: Annotated[str, typer.Option("--location", help="Where a meeting is")] = "",
    questions: Annotated[
        str | None,
        typer.Option("--questions", help="Follow-up question ids, comma-separated"),
    ] = None,
    signoff: Annotated[
        list[str] | None,
        typer.Option(
            "--signoff", metavar="ORG", help="An organisation that must sign what it sends; repeat"
        ),
    ] = None,
) -> PlanChange:
    """Add a stage to a running cycle, at a time or relative to another stage.

    \b
    Examples:
      samverkan stage add 1 --kind meeting --key second-workshop --after followup \\
        --offset 1d --starts 2027-03-10T13:00 --duration 3h --location "Stadshuset"
      samverkan stage add 1 --kind email --key politicians --template progress-note \\
        --audience role=politician --after workshop --offset 1d --dry-run
    """
    from flows.cycles.resequence import add_stage

    return PlanChange(
        add_stage,
        cycle_id=cycle_id,
        key=key,
        kind=kind,
        at=at,
        after=after,
        before=before,
        offset=offset,
        template=template,
        audience=audience,
        unless=unless,
        approval=approval,
        starts=starts,
        duration=duration,
        location=location,
        questions=[q.strip() for q in questions.split(",")] if questions else None,
        signoff=signoff or None,
    )


@stage_app.command("move")
@handled
@plan_change
def stage_move(
    cycle_id: CycleId,
    key: StageKey,
    after: Annotated[str | None, typer.Option("--after", help="Put it after this stage")] = None,
    before: Annotated[str | None, typer.Option("--before", help="Put it before this stage")] = None,
) -> PlanChange:
    """Move a stage that has not run after or before another. A stage with a relative time
    takes the other stage as its new anchor.

    \b
    Example:  samverkan stage move 1 followup-reminder --after reflection --dry-run
    """
    from flows.cycles.resequence import move_stage

    return PlanChange(
        move_stage,
        cycle_id=cycle_id,
        key=key,
        after=after,
        before=before,
    )


@stage_app.command("skip")
@handled
@plan_change
def stage_skip(
    cycle_id: CycleId,
    key: StageKey,
) -> PlanChange:
    """Skip a stage that has not run (its drafts, if any, are dropped).

    \b
    Example:  samverkan stage skip 1 workshop-reminder --reason "everyone has answered"
    """
    from flows.cycles.resequence import skip_stage

    return PlanChange(
        skip_stage,
        cycle_id=cycle_id,
        key=key,
    )


@stage_app.command("edit")
@handled
@plan_change
def stage_edit(
    cycle_id: CycleId,
    key: StageKey,
    template: Annotated[str | None, typer.Option("--template", help="Another email")] = None,
    audience: Annotated[str | None, typer.Option("--audience", help="A new audience")] = None,
    unless: Annotated[
        str | None,
        typer.Option(
            "--unless", help="accepted, responded, answered:<stage>, or '' for nobody left out"
        ),
    ] = None,
    approval: Annotated[
        bool | None,
        typer.Option("--approval/--no-approval", help="Whether drafts wait for approval"),
    ] = None,
    signoff: Annotated[
        list[str] | None,
        typer.Option(
            "--signoff",
            metavar="ORG",
            help="An organisation that must sign what it sends; repeat for each (replaces "
            "those named before)",
        ),
    ] = None,
    no_signoff: Annotated[
        bool, typer.Option("--no-signoff", help="No organisation signs it any more")
    ] = False,
) -> PlanChange:
    """Change a stage that has not run: its email, audience, who is left out, approval, or
    who signs it. Drafts waiting for approval are dropped and made again on the next tick; a
    signature on a text the change alters is void, and its signers are emailed.

    \b
    Example:  samverkan stage edit 1 followup --audience "role=professional,manager" --approval
              samverkan stage edit 1 invitation --signoff Försäkringskassan \\
                --signoff Arbetsförmedlingen --dry-run
    """
    if signoff and no_signoff:
        from flows.cli._common import fail

        fail("give --signoff ORG or --no-signoff, not both")
    from flows.cycles.resequence import edit_stage

    return PlanChange(
        edit_stage,
        cycle_id=cycle_id,
        key=key,
        template=template,
        audience=audience,
        approval=approval,
        unless=unless,
        signoff=[] if no_signoff else (signoff or None),
    )


@stage_app.command("reschedule")
@handled
@plan_change
def stage_reschedule(
    cycle_id: CycleId,
    key: StageKey,
    at: Annotated[str, typer.Option("--at", help="New time, ISO (a meeting: its start)")],
) -> PlanChange:
    """Give a stage a new time. For a meeting this moves the meeting itself; if it was
    already announced, everyone invited gets a calendar update, and the stages that follow it
    (reminders, follow-ups) move with it.

    \b
    Example:  samverkan stage reschedule 1 workshop --at 2027-02-17T09:00 --dry-run
    """
    from flows.cycles.resequence import reschedule_stage

    return PlanChange(
        reschedule_stage,
        cycle_id=cycle_id,
        key=key,
        at=at,
    )


@stage_app.command("cancel")
@handled
@plan_change
def stage_cancel(
    cycle_id: CycleId,
    key: StageKey,
) -> PlanChange:
    """Cancel a stage. Cancelling an announced meeting sends everyone invited a calendar
    cancellation and cancels the reminders that depend on it.

    \b
    Example:  samverkan stage cancel 1 workshop --reason "the board meets that day"
    """
    from flows.cycles.resequence import cancel_stage

    return PlanChange(
        cancel_stage,
        cycle_id=cycle_id,
        key=key,
    )
