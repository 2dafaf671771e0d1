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


indicators_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
)


@indicators_app.callback()
@handled
def indicators(
    ctx: typer.Context,
    cycle: Annotated[
        list[int] | None,
        typer.Option(
            "--cycle",
            help="Only this cycle; repeat for more [default: all]",
            callback=check_cycle_ids,
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    schema: Annotated[
        int,
        typer.Option(
            "--schema",
            help="1: per organisation × role; 2: also per instrument question and respondent "
            "group, with histograms, for combining",
        ),
    ] = 1,
    collaboration: Annotated[
        str | None,
        typer.Option(
            "--collaboration",
            help="This collaboration's name in schema 2 rows [default: SAMVERKAN_COLLABORATION]",
        ),
    ] = None,
) -> None:
    """Export the indicators for combining collaborations: schema samverkan.indicators/1, one
    row per cycle × organisation × role × indicator, or with --schema 2 also per instrument
    question and respondent group, with the histogram of every scale (both described in the
    README).

    \b
    Examples:
      samverkan indicators --format csv > indicators.csv
      samverkan indicators --schema 2 --collaboration "Samordningsförbundet Göteborg" > sf.csv
      samverkan indicators combine region/*.csv --format html > region.html
    """
    if ctx.invoked_subcommand is not None:
        return
    if fmt not in ("csv", "json"):
        fail(f"unknown format {fmt!r} (use csv or json)")
    if schema not in (1, 2):
        fail(f"unknown schema {schema} (use 1 or 2)")
    settings = get_settings()
    engine = open_engine(settings)
    if schema == 1:
        from flows.reporting import indicators as ind

        text = ind.export(engine, cycle_ids=cycle, min_group=settings.min_group, fmt=fmt)
    else:
        from flows.reporting import by_question
        from flows.templates import Question
        from flows.templates.instruments import load_instruments

        name = collaboration if collaboration is not None else settings.collaboration
        text = by_question.export(
            engine,
            load_instruments(settings.templates_dir, Question),
            cycle_ids=cycle,
            min_group=settings.min_group,
            fmt=fmt,
            collaboration=name.strip(),
        )
    typer.echo(text, nl=False)


@indicators_app.command("combine")
@handled
def combine(
    files: Annotated[
        list[Path], typer.Argument(help="Indicator exports (CSV or JSON, schema 1 or 2)")
    ],
    fmt: Annotated[str, typer.Option("--format", help="csv, json or html")] = "csv",
    min_group: Annotated[
        int | None,
        typer.Option(
            "--min-group",
            min=1,
            help="Combined figures of fewer people are not shown [default: SAMVERKAN_MIN_GROUP]",
        ),
    ] = None,
) -> None:
    """Combine many collaborations' exports into a regional or national view: per instrument
    question, respondent group and year, the combined count, mean and exact median, the
    response rate, how many collaborations are behind each figure and the change from the
    year before. Only figures the exports publish are combined; refuses exports that asked
    the same question under different instrument versions.

    \b
    Example:  samverkan indicators combine a.csv b.csv c.json --format html > region.html
    """
    from flows.reporting import combine as comb

    if fmt not in ("csv", "json", "html"):
        fail(f"unknown format {fmt!r} (use csv, json or html)")
    floor = min_group if min_group is not None else get_settings().min_group
    combiner, rows = comb.combine(files, min_group=floor)
    if fmt == "html":
        from flows.reporting.combine_report import to_html

        text = to_html(combiner, rows, min_group=floor)
    else:
        text = comb.to_csv(rows) if fmt == "csv" else comb.to_json(rows)
    typer.echo(text, nl=False)
