"""What the commands share: settings and store, errors and exit codes, output, and the
arguments and options that several commands take.

Nothing here imports the store's engine, SQLAlchemy or Prefect at import time: ``samverkan
--help`` loads this module, so each of those is imported inside the function that needs it.
"""

import inspect
import json
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from store.errors import ImportRejected, SamverkanError

F = TypeVar("F", bound=Callable[..., Any])


def group_help(text: str, example: str) -> str:
    # \b keeps click from re-wrapping the example into the sentence before it.
    return f"{text}\n\n\b\nExample:  {example}"


# errors ------------------------------------------------------------------------------------


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handled(func: F) -> F:
    """Turn our errors into one line and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImportRejected as exc:
            for problem in exc.problems:
                typer.echo(problem, err=True)
            fail(f"{len(exc.problems)} invalid row(s); nothing was imported")
        except SamverkanError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


# Ids are integers of the store (PostgreSQL's integer is 32 bits): a larger one names no cycle,
# and is answered here, since the database would fail on it.
MAX_ID = 2**31 - 1


def check_cycle_id(value: int) -> int:
    if abs(value) > MAX_ID:
        fail(f"no cycle with id {value} (see: samverkan cycle list)")
    return value


def check_cycle_ids(values: list[int] | None) -> list[int] | None:
    for value in values or []:
        check_cycle_id(value)
    return values


def in_range(option: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:  # false for nan too
        fail(f"{option} {value:g}: use {low:g} to {high:g}{unit}")


# settings and store ------------------------------------------------------------------------


def get_settings() -> Any:
    from flows.settings import load_settings

    return load_settings()


def open_engine(settings: Any) -> Any:
    from store.db import open_store

    return open_store(settings.database_url)


# output ------------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# arguments and options ---------------------------------------------------------------------

ShownId = Annotated[
    int, typer.Argument(metavar="ID", help="The cycle's id", callback=check_cycle_id)
]
CycleId = Annotated[
    int, typer.Argument(metavar="CYCLE", help="The cycle's id", callback=check_cycle_id)
]
StageKey = Annotated[str, typer.Argument(metavar="KEY", help="The stage's key, e.g. workshop")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
# --reason of a single action (approve, erase, resend); a plan change has its own below.
AuditReason = Annotated[str | None, typer.Option("--reason", help="Kept in the audit log")]


# changing a running cycle's plan -----------------------------------------------------------

DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the effects; change nothing.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Kept in the audit log.")]
Expect = Annotated[
    int | None,
    typer.Option(
        "--expect-version",
        help="Refuse if the plan's version is no longer this one (the version a --dry-run showed).",
    ),
]


class PlanChange:
    """A change a command asks for: a function of flows.cycles.resequence and its arguments,
    called as ``change(engine, settings, dry_run=…, reason=…, expect_version=…, **arguments)``."""

    def __init__(self, change: Callable[..., Any], **arguments: Any) -> None:
        self.change = change
        self.arguments = arguments


def plan_change(command: Callable[..., PlanChange]) -> Callable[..., None]:
    """Make a command that changes a running cycle's plan.

    The command takes its own arguments and returns the PlanChange they ask for; this adds
    --dry-run, --reason and --expect-version after its own options (the same three, with the
    same help, on every such command), applies the change, and prints its effects.
    """
    own = inspect.signature(command)
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in (
            ("dry_run", DryRun, False),
            ("reason", Reason, None),
            ("expect_version", Expect, None),
        )
    ]

    @wraps(command)
    def run(
        *args: Any,
        dry_run: bool = False,
        reason: str | None = None,
        expect_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        asked = command(*args, **kwargs)
        settings = get_settings()
        effects = asked.change(
            open_engine(settings),
            settings,
            dry_run=dry_run,
            reason=reason,
            expect_version=expect_version,
            **asked.arguments,
        )
        for line in effects.lines():
            typer.echo(line)
        if dry_run:
            typer.echo(
                f"dry run: nothing was changed. To apply exactly this, add "
                f"--expect-version {effects.version[0]}"
            )

    # Typer reads a command's options from its signature.
    run.__signature__ = own.replace(  # type: ignore[attr-defined]
        parameters=[*own.parameters.values(), *shared], return_annotation=None
    )
    return run
