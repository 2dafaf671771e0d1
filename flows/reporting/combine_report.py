"""The combined view as an HTML page: per instrument question, a table by year and respondent
group and a chart of the mean per year. No script, nothing fetched from elsewhere."""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from flows.reporting.combine import ALL, Combined, Combiner
from flows.reporting.report import _pyplot, _svg

GROUP_ALL = "everyone"


@functools.cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _shown(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _chart(title: str, rows: list[Combined], name: str) -> Markup | None:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for c in rows:
        if c.mean is not None:
            series[GROUP_ALL if c.respondent_group == ALL else c.respondent_group].append(
                (c.year, c.mean)
            )
    if not any(len(points) > 1 for points in series.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for group, points in sorted(series.items(), key=lambda kv: kv[0] != GROUP_ALL):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=group)
    ax.set_ylim(0, 10)
    ax.set_ylabel("mean")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    label = "; ".join(
        f"{group}: " + ", ".join(f"{year} {mean:g}" for year, mean in points)
        for group, points in sorted(series.items())
    )
    return Markup(_svg(fig, f"{title}, mean per year ({label})", name))


def to_html(combiner: Combiner, rows: list[Combined], *, min_group: int) -> str:
    by_question: dict[tuple[str, int | None, str], list[Combined]] = defaultdict(list)
    for c in rows:
        by_question[(c.instrument, c.instrument_version, c.question)].append(c)
    sections = []
    for i, ((inst, version, question), items) in enumerate(
        sorted(
            by_question.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2] != ALL, kv[0][2])
        )
    ):
        if question == ALL:
            title = "Who was asked and who answered"
            head = [
                "Year",
                "Group",
                "Collaborations",
                "Left out",
                "Asked",
                "Answered",
                "Response rate",
            ]
            body = [
                [
                    c.year,
                    c.respondent_group if c.respondent_group != ALL else GROUP_ALL,
                    c.collaborations,
                    c.suppressed_at_source,
                    *(
                        ("suppressed", "", "")
                        if c.suppressed
                        else (c.asked, c.answered, c.response_rate)
                    ),
                ]
                for c in items
            ]
            chart = None
        else:
            title = f"Question {question}"
            head = [
                "Year",
                "Group",
                "Collaborations",
                "Left out",
                "Answers",
                "Mean",
                "Median",
                "Change",
            ]
            body = [
                [
                    c.year,
                    c.respondent_group if c.respondent_group != ALL else GROUP_ALL,
                    c.collaborations,
                    c.suppressed_at_source,
                    *(
                        ("suppressed", "", "", "")
                        if c.suppressed
                        else (c.n, c.mean, c.median, c.change)
                    ),
                ]
                for c in items
            ]
            chart = _chart(title, items, f"q{i}")
        sections.append(
            {
                "id": f"q{i}",
                "title": title,
                "instrument": f"{inst} version {version}" if inst else "no instrument (schema 1)",
                "head": head,
                "rows": [[_shown(v) for v in r] for r in body],
                "chart": chart,
            }
        )
    return (
        _env()
        .get_template("combined.html")
        .render(
            files=combiner.files,
            collaborations=len(combiner.collaborations),
            min_group=min_group,
            sections=sections,
        )
    )
