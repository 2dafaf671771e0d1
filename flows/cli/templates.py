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
