"""``samverkan templates …``: list, check and describe process templates."""

from typing import Annotated

import typer

from flows.cli._common import get_settings, group_help, handled, print_json

templates_app = typer.Typer(
    help=group_help("List and check process templates.", "samverkan templates list"),
    no_args_is_help=True,
)


@templates_app.command("list")
@handled
def templates_list() -> None:
    """List the process templates that cycles can be launched from.

    \b
    Example:  samverkan templates list
    """
    from flows.templates import catalogue

    settings = get_settings()
    listed = catalogue(settings.templates_dir)
    if not listed:
        typer.echo(f"no templates in {settings.templates_dir}")
    for item in listed:
        if item.template is None:
            typer.echo(f"{item.name}  (broken: {item.problem})")
            continue
        stages = " → ".join(s.key for s in item.template.spec.stages)
        typer.echo(f"{item.name}  {item.template.spec.title.get('en', '')}: {stages}")


@templates_app.command("validate")
@handled
def templates_validate(
    path: Annotated[str, typer.Argument(help="A template folder, or the name of one")],
) -> None:
    """Check a template: its process.yaml, its anchors, and every email in both languages,
    rendered with the example values of its variables.

    \b
    Example:  samverkan templates validate process_templates/learning-cycle
    """
    from flows.templates.validation import validate_template

    settings = get_settings()
    report = validate_template(settings, path)
    typer.echo(report)


@templates_app.command("schema")
@handled
def templates_schema() -> None:
    """Print the JSON schema of process.yaml, for editors.

    \b
    Example:  samverkan templates schema > process.schema.json
    """
    from flows.templates import json_schema

    print_json(json_schema())


@templates_app.command("instruments")
@handled
def templates_instruments() -> None:
    """List the instruments (question sets with fixed wording) and their respondent groups.

    \b
    Example:  samverkan templates instruments
    """
    from flows.templates import Question
    from flows.templates.instruments import load_instruments

    settings = get_settings()
    found = load_instruments(settings.templates_dir, Question)
    if not found:
        typer.echo(f"no instruments in {settings.templates_dir / 'instruments'}")
    for inst in found.values():
        state = "locked" if inst.locked else "not locked"
        typer.echo(
            f"{inst.id} version {inst.version} ({state}): {inst.title.get('en', '')}; "
            f"{len(inst.questions)} questions: {', '.join(inst.questions)}"
        )
        for g in inst.groups:
            typer.echo(f"  group {g.name}: {g.audience.text}")


@templates_app.command("fingerprint")
@handled
def templates_fingerprint(
    path: Annotated[str, typer.Argument(help="An instrument file (instruments/NAME.yaml)")],
) -> None:
    """Print the fingerprint of each question's wording in an instrument file, to write
    beside the question (fingerprint: …) when a new version is locked. Says which
    questions' wording no longer matches the fingerprint the file gives.

    \b
    Example:  samverkan templates fingerprint process_templates/instruments/samverkan-sf.yaml
    """
    from pathlib import Path

    from flows.templates import Question
    from flows.templates.instruments import fingerprints

    for qid, now, given in fingerprints(Path(path), Question):
        state = (
            "matches"
            if given == now
            else "no fingerprint yet"
            if given is None
            else f"CHANGED (the file gives {given})"
        )
        typer.echo(f"{qid}: {now}  {state}")
