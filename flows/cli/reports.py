"""``samverkan report`` and ``samverkan indicators``: what a cycle did, for its steering
group and for comparing collaborations."""

import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._common import ShownId, check_cycle_ids, fail, get_settings, handled, open_engine


@handled
def report(
    cycle_id: ShownId,
    fmt: Annotated[str, typer.Option("--format", help="html or md")] = "html",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite --out even if it is not an earlier report"),
    ] = False,
) -> None:
    """The reflection report of a cycle: what was done, who took part, the indicators with
    their trend, and the participants' own words. Printed, or written with --out (which
    replaces only an earlier report, unless --force).

    Example:  samverkan report 1 --out reflection.html
    """
    from flows.reporting.report import build_report, is_report

    if out is not None and out.exists() and not force and not is_report(out):
        fail(
            f"{out} exists and is not a report samverkan wrote; not overwritten "
            "(use --force to overwrite it)"
        )
    settings = get_settings()
    text = build_report(open_engine(settings), settings, cycle_id, fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    # Written beside it and renamed, so that a failed write leaves the old file whole.
    partial = out.with_name(f".{out.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"wrote {out}")


@handled
def indicators(
    cycle: Annotated[
        list[int] | None,
        typer.Option(
            "--cycle",
            help="Only this cycle; repeat for more [default: all]",
            callback=check_cycle_ids,
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
) -> None:
    """Export the indicators, one row per cycle × organisation × role × indicator
    (schema samverkan.indicators/1, described in the README), for combining collaborations.

    Example:  samverkan indicators --format csv > indicators.csv
    """
    from flows.reporting import indicators as ind

    if fmt not in ("csv", "json"):
        fail(f"unknown format {fmt!r} (use csv or json)")
    settings = get_settings()
    text = ind.export(open_engine(settings), cycle_ids=cycle, min_group=settings.min_group, fmt=fmt)
    typer.echo(text, nl=False)
