"""The reflection report of a cycle, as HTML (with inline SVG charts) or Markdown.

What was done (the plan as it really ran, with every re-sequencing and its reason), who took
part (whose voices were heard, and whose were missing), the indicators with their trend over
earlier cycles, and the participants' own words on what works. Every number about a group
follows the small-group rule of flows/reporting/indicators.py; the words are shown without names.
This module gathers and words it all; templates/report.html and report.md lay it out.
"""

from __future__ import annotations

import functools
import html
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_eval_context
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.nodes import EvalContext
from markupsafe import Markup
from sqlalchemy import Engine
from sqlmodel import Session

from flows.reporting import indicators as ind
from flows.settings import Settings
from flows.stages.base import role_label
from flows.templates import template_of
from messaging import i18n
from messaging.i18n import N_
from store import queries
from store.models import Cycle, Stage, pk

# Each re-sequencing as the report tells it, from the audit entry's action and stage: the
# audit log's own detail line is English and written for the coordinator's terminal.
CHANGES = {
    "stage.add": N_("Added the stage {key}"),
    "stage.move": N_("Moved the stage {key}"),
    "stage.skip": N_("Skipped the stage {key}"),
    "stage.edit": N_("Changed the stage {key}"),
    "stage.reschedule": N_("Rescheduled the stage {key}"),
    "stage.cancel": N_("Cancelled the stage {key}"),
    "cycle.pause": N_("Paused the cycle"),
    "cycle.resume": N_("Resumed the cycle"),
    "cycle.cancel": N_("Cancelled the cycle"),
    "cycle.add-participants": N_("Added participants to the cycle"),
}
RESEQUENCING = tuple(CHANGES)
STAGE_KINDS = {
    "email": N_("email"),
    "meeting": N_("meeting"),
    "followup": N_("follow-up questions"),
    "reflection": N_("reflection"),
}
STAGE_STATUSES = {
    "pending": N_("planned"),
    "awaiting_approval": N_("awaiting approval"),
    "approved": N_("approved"),
    "running": N_("running"),
    "done": N_("done"),
    "skipped": N_("skipped"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "held": N_("held (it follows a cancelled meeting)"),
}
WORDS = (
    "what-is-better",
    "what-works",
    "difference-made",
    "one-step-up",
    "why-not-zero",
    "best-hopes",
)

LABELS = {
    "title": N_("Reflection"),
    "done": N_("What we did"),
    "took_part": N_("Who took part"),
    "indicators": N_("Where we are"),
    "trend": N_("Over the cycles"),
    "words": N_("In their own words"),
    "changes": N_("How the plan changed on the way"),
    "no_changes": N_("The plan ran as launched."),
    "stage": N_("Stage"),
    "kind": N_("Kind"),
    "when": N_("When"),
    "status": N_("Status"),
    "sent": N_("Sent"),
    "group": N_("Group"),
    "asked": N_("Asked"),
    "answered": N_("Answered"),
    "rate": N_("Response rate"),
    "mean": N_("Mean (0–10)"),
    "median": N_("Median"),
    "change": N_("Change since the cycle before"),
    "n": N_("Answers"),
    "hidden": N_("not shown"),
    "everyone": N_("Everyone"),
    "missing": N_("Voices we did not hear this time: {groups}."),
    "all_heard": N_("Every organisation and role was heard."),
    "shown_heard": N_("Every organisation and role large enough to be shown was heard."),
    "scale": N_("Answers on the scale"),
    "by_role": N_("By role"),
    "by_org": N_("By organisation"),
    "by_group": N_("By respondent group ({instrument})"),
    "no_words": N_("No written answers yet."),
    "words_elsewhere": N_(
        "The participants' own words are in the report emailed to the "
        "coordinator and the steering group, and in samverkan report; copies "
        "kept outside samverkan's database leave them out, so that erasing a "
        "person reaches every copy of what they wrote."
    ),
    "cycle": N_("Cycle"),
    "small": N_(
        "Groups smaller than {n} are not shown, so that no one can be "
        "identified; nor are some larger ones whose figures, subtracted from a "
        "total, would give a smaller one away."
    ),
    "reason": N_("reason"),
    "not_reached": N_(
        "{n} not reached: mail to their address bounced, so later stages left "
        "them out; they are not counted among those who did not answer."
    ),
}


@dataclass
class ReportData:
    cycle: Cycle
    labels: dict[str, str]
    stages: list[dict[str, Any]]
    changes: list[str]
    figures: ind.Indicators
    trend: ind.Indicators
    words: dict[str, list[str]]
    question_text: dict[str, str]
    min_group: int
    # The rows of the respondent groups' table, and the instrument they belong to.
    by_group: list[list[str]] = field(default_factory=list)
    instrument: str = ""
    not_reached: int = 0  # members whose address bounced (shown only where counts are)
    language: str = "en"  # of the labels (the coordinator's)


def gather(engine: Engine, settings: Settings, cycle_id: int) -> ReportData:
    language = settings.coordinator_language
    labels: dict[str, str] = i18n.translated(LABELS, language)
    tr = i18n.translations(language)
    with Session(engine) as session:
        cycle = queries.get_cycle(session, cycle_id=cycle_id)
        tz = ZoneInfo(cycle.timezone)
        counts = queries.message_counts(session, cycle_id=cycle_id)
        stages = [
            {
                "key": s.key,
                "kind": tr.gettext(STAGE_KINDS.get(s.kind, s.kind)),
                "status": tr.gettext(STAGE_STATUSES.get(str(s.status), str(s.status))),
                "when": f"{_when(s).astimezone(tz):%Y-%m-%d %H:%M}",
                "sent": counts.get(pk(s), {}).get("sent", 0),
                # How many a stage for part of the network reached is the size of that part.
                "narrow": s.kind != "reflection" and s.audience != "all",
            }
            for s in queries.stages_of(session, cycle_id=cycle_id)
        ]
        members = queries.active_member_counts(session, cycle_id=cycle_id)[0]
        bounced = queries.not_reached(session, cycle_id=cycle_id)
        changes = []
        for entry in queries.audit_log(session, cycle_id=cycle_id):
            if entry.action in RESEQUENCING:
                told = tr.gettext(CHANGES[entry.action]).format(key=entry.stage_key or "")
                why = f" ({labels['reason']}: {entry.reason})" if entry.reason else ""
                changes.append(f"{entry.at.astimezone(tz):%Y-%m-%d}: {told}{why}")
        library = template_of(settings, cycle).questions
        words: dict[str, list[str]] = {}
        for qid, text in queries.written_answers(session, cycle_id=cycle_id):
            if text and text.strip():
                words.setdefault(qid, []).append(text.strip())
    ordered = {q: words[q] for q in WORDS if q in words}
    ordered.update({q: w for q, w in words.items() if q not in ordered})
    figures = ind.compute(engine, cycle_ids=[cycle_id], min_group=settings.min_group)
    trend = ind.compute(engine, min_group=settings.min_group)
    texts = {q: library[q].localised(language)["text"] for q in ordered if q in library}
    # A stage's count of messages is a count of people: shown under the same rule as the
    # indicators (a follow-up's count is the number asked), so a network too small to show
    # shows none, and a stage for part of it never does.
    everyone = (cycle_id, ind.ALL, ind.ALL)
    few = everyone in figures.hidden(cycle_id, "counts") or 0 < members < settings.min_group
    for stage in stages:
        narrow = stage.pop("narrow")
        if narrow or (few and stage["kind"] != tr.gettext(STAGE_KINDS["reflection"])):
            stage["sent"] = labels["hidden"]
    data = ReportData(
        cycle, labels, stages, changes, figures, trend, ordered, texts, settings.min_group
    )
    data.language = language
    data.not_reached = 0 if few else bounced
    _respondent_groups(engine, settings, data)
    return data


def _respondent_groups(engine: Engine, settings: Settings, data: ReportData) -> None:
    """The table by respondent group, for a cycle that asked an instrument with groups: the
    same figures as ``samverkan indicators --schema 2`` (hidden where it hides them), the
    scale's for the first scale question asked."""
    from flows.reporting.by_question import compute_by_question

    cid = pk(data.cycle)
    t = template_of(settings, data.cycle)
    found = compute_by_question(
        engine, t.instruments, cycle_ids=[cid], min_group=settings.min_group
    )
    inst = found.instruments.get(cid)
    if inst is None or not inst.groups:
        return
    rows = [r for r in found.rows() if r.cycle_id == cid and r.organisation == r.role == ind.ALL]
    scale = next(
        (r.question for r in rows if r.question != ind.ALL and r.indicator == "scale_mean"), None
    )
    language = settings.coordinator_language
    lab = data.labels

    def shown(group: str, question: str, indicator: str) -> str:
        got = [
            r
            for r in rows
            if (r.respondent_group, r.question, r.indicator) == (group, question, indicator)
        ]
        if not got:
            return "–"
        if got[0].suppressed:
            return lab["hidden"]
        value = got[0].value
        if value is None:
            return "–"
        if indicator == "response_rate":
            return f"{value:.0%}"
        return f"{value:.1f}" if indicator == "scale_mean" else f"{value:g}"

    for g in inst.groups:
        if not any(r.respondent_group == g.name for r in rows):
            continue
        data.by_group.append(
            [
                g.title.get(language, g.name),
                shown(g.name, ind.ALL, "asked"),
                shown(g.name, ind.ALL, "answered"),
                shown(g.name, ind.ALL, "response_rate"),
                shown(g.name, scale, "scale_mean") if scale else "–",
                shown(g.name, scale, "scale_median") if scale else "–",
            ]
        )
    data.instrument = f"{inst.title.get(language, inst.id)}, {inst.id} v{inst.version}"


def _when(stage: Stage) -> datetime:
    """A meeting's own start (kept current when it is rescheduled); for any other stage,
    when it ran or is due. A meeting's stage runs when its invite goes out, weeks before."""
    starts = stage.config.get("starts_at") if stage.kind == "meeting" else None
    if starts:
        return datetime.fromisoformat(starts)
    return stage.ran_at or stage.due_at


def _value(data: ReportData, group: ind.Group, indicator: str, percent: bool = False) -> str:
    value, _, hidden = data.figures.value(group, indicator)
    if hidden:
        return data.labels["hidden"]
    if value is None:
        return "–"
    lang = data.language  # 75% and 7.2 in English, 75 % and 7,2 in Swedish (Babel)
    if percent:
        return i18n.format_percent(value, lang)
    if indicator == "scale_change":
        return ("+" if value >= 0 else "") + i18n.format_number(value, lang, decimals=1)
    if indicator == "scale_mean":
        return i18n.format_number(value, lang, decimals=1)
    return i18n.format_number(value, lang)


def _group_table(data: ReportData, level: str) -> tuple[list[str], list[list[str]]]:
    cid = pk(data.cycle)
    groups = [
        g
        for g in data.figures.groups(cid)
        if (level == "role" and g[1] == ind.ALL and g[2] != ind.ALL)
        or (level == "org" and g[1] != ind.ALL and g[2] == ind.ALL)
        or (level == "all" and g[1] == ind.ALL and g[2] == ind.ALL)
    ]
    lab = data.labels
    head = [
        lab["group"],
        lab["asked"],
        lab["answered"],
        lab["rate"],
        lab["mean"],
        lab["median"],
        lab["change"],
    ]
    rows = []
    for g in groups:
        name = (
            lab["everyone"] if level == "all" else (_role(data, g[2]) if level == "role" else g[1])
        )
        rows.append(
            [
                name,
                _value(data, g, "asked"),
                _value(data, g, "answered"),
                _value(data, g, "response_rate", percent=True),
                _value(data, g, "scale_mean"),
                _value(data, g, "scale_median"),
                _value(data, g, "scale_change"),
            ]
        )
    return head, rows


def _role(data: ReportData, role: str) -> str:
    return role_label(role, data.language)


def _missing(data: ReportData) -> str:
    cid = pk(data.cycle)
    # Only groups whose counts are published: naming a hidden group as silent would tell
    # how many of it answered.
    silent = [
        g
        for g in data.figures.groups(cid)
        if (g[1] == ind.ALL) != (g[2] == ind.ALL)
        and data.figures.value(g, "asked")[0]
        and data.figures.value(g, "answered")[0] == 0
    ]
    names = [_role(data, g[2]) if g[1] == ind.ALL else g[1] for g in silent]
    if not names:
        levels = [
            g for g in data.figures.hidden(cid, "counts") if (g[1] == ind.ALL) != (g[2] == ind.ALL)
        ]
        return data.labels["shown_heard" if levels else "all_heard"]
    return data.labels["missing"].format(groups=", ".join(names))


# Charts ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    # Matplotlib announces font-cache building through logging; keep the CLI's output clean.
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.size": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


# Matplotlib's Dublin Core metadata (an RDF block) is not allowed in an SVG inside HTML;
# with every key set to None it writes no <metadata> at all.
_NO_METADATA = {"Format": None, "Type": None, "Creator": None, "Date": None}


def _svg(fig: Any, label: str, name: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
    _pyplot().close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Every chart numbers its elements from 1 (figure_1, axes_1, ...): prefix the ids and
    # the references to them, so that two charts in one page do not share ids.
    svg = re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{name}-", svg)
    # The figure is the image, named by its label with the numbers; the drawing inside is
    # not read out a second time, tick by tick.
    svg = svg.replace("<svg ", '<svg aria-hidden="true" ', 1)
    return f'<figure role="img" aria-label="{html.escape(label)}">{svg}</figure>'


def distribution_chart(data: ReportData) -> str | None:
    group = (pk(data.cycle), ind.ALL, ind.ALL)
    mean, _, hidden = data.figures.value(group, "scale_mean")
    if hidden or mean is None:
        return None
    plt = _pyplot()
    from matplotlib import ticker

    hist = data.figures.distribution.get(group, {})
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(range(11), [hist.get(v, 0) for v in range(11)], color="#0b4f8a")
    ax.set_xticks(range(11))
    ax.set_xlabel("0–10")
    ax.set_ylabel(data.labels["n"])
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # people come whole
    counts = ", ".join(f"{v}: {hist[v]}" for v in sorted(hist))
    return _svg(fig, f"{data.labels['scale']} ({counts})", "distribution")


def trend_chart(data: ReportData) -> str | None:
    points = []
    for cycle in data.trend.cycles:
        value, _, hidden = data.trend.value((pk(cycle), ind.ALL, ind.ALL), "scale_mean")
        if value is not None and not hidden:
            points.append((cycle.name, value))
    if len(points) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#0b4f8a")
    ax.set_ylim(0, 10)
    ax.set_ylabel(data.labels["mean"])
    fig.autofmt_xdate()
    label = ", ".join(f"{name}: {value:g}" for name, value in points)
    return _svg(fig, f"{data.labels['trend']} ({label})", "trend")


# Output ------------------------------------------------------------------------------------


def _stage_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    lab = data.labels
    head = [lab["stage"], lab["kind"], lab["when"], lab["status"], lab["sent"]]
    rows = [[s["key"], s["kind"], s["when"], s["status"], str(s["sent"])] for s in data.stages]
    return head, rows


def _context(data: ReportData) -> dict[str, Any]:
    """What both templates show: the tables as header and rows of text."""
    return {
        "labels": data.labels,
        "cycle_name": data.cycle.name,
        "stages": _stage_table(data),
        "changes": data.changes,
        "missing": _missing(data)
        + (f" {data.labels['not_reached'].format(n=data.not_reached)}" if data.not_reached else ""),
        "everyone": _group_table(data, "all"),
        "by_role": _group_table(data, "role"),
        "by_org": _group_table(data, "org"),
        "by_group": (
            [data.labels[k] for k in ("group", "asked", "answered", "rate", "mean", "median")],
            data.by_group,
        ),
        "by_group_title": data.labels["by_group"].format(instrument=data.instrument),
        "small": data.labels["small"].format(n=data.min_group),
        "words": data.words,
        "question_text": data.question_text,
    }


def to_markdown(data: ReportData, *, words: bool = True) -> str:
    """The report as Markdown; ``words=False`` leaves the participants' own words out (for a
    copy kept where erasing a person cannot reach it)."""
    context = _context(data)
    if not words:
        context["words"] = {}
        context["labels"] = {**data.labels, "no_words": data.labels["words_elsewhere"]}
    return _templates().get_template("report.md").render(context, mark=MD_MARK)


# Text that is not ours (participants' words, names of cycles, organisations and stages, the
# coordinator's reasons) goes into a report as text, never as markup or terminal control:
# C0 and C1 control characters go (ESC starts the sequences that recolour or clear the
# terminal of whoever prints the file), and so do the bidirectional overrides that make text
# read otherwise than it is written.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Inline Markdown: emphasis, code, links and images, tables, strikethrough, escapes; and the
# characters that start HTML (tags, entities, autolinks) become entities.
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# What makes a line a heading, list item, thematic break or setext underline.
_MD_LINE_START = re.compile(r"^([#+\-=]|\d+(?=[.)]))")


def clean(text: str) -> str:
    """``text`` without control characters and bidirectional overrides."""
    return _INVISIBLE.sub("", text)


def md_inline(text: str) -> str:
    """``text`` as literal Markdown within a line: one line, no markup, no HTML."""
    one_line = " ".join(clean(text).split())
    escaped = _MD_INLINE.sub(r"\\\1", one_line)
    return "".join(_MD_ENTITIES.get(c, c) for c in escaped)


def md_line(text: str) -> str:
    """``text`` as literal Markdown at the start of a line (or of a quote)."""
    inline = md_inline(text)
    match = _MD_LINE_START.match(inline)
    if not match:
        return inline
    if match.group(1)[0].isdigit():  # "1." and "1)" start a list; "1\." does not
        end = match.end()
        return inline[:end] + "\\" + inline[end:]
    return "\\" + inline


def to_html(data: ReportData) -> str:
    distribution, trend = distribution_chart(data), trend_chart(data)
    return (
        _templates()
        .get_template("report.html")
        .render(
            _context(data),
            lang=data.language,
            dir=i18n.direction(data.language),
            mark=Markup(HTML_MARK),
            distribution=Markup(distribution) if distribution else None,
            trend=Markup(trend) if trend else None,
        )
    )


@pass_eval_context
def _html_text(context: EvalContext, value: Any) -> Any:
    """Every value the HTML template shows, as text: without control characters, and escaped
    as the report has always escaped it (``&#x27;`` for a quote, where autoescaping alone
    writes ``&#39;``), so that erasure finds a participant's words in reports stored before.
    Markup (the charts, a table) is already HTML; the Markdown template is not escaped."""
    if context.autoescape and not isinstance(value, Markup):
        return Markup(html.escape(clean(str(value))))
    return value


class _OneLine(Extension):
    """The HTML report is one line. In its template the line breaks, and the indentation after
    them (after a line that holds only a block tag, trim_blocks has taken the line break and left
    the indentation), only lay the template out; the values shown keep theirs."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        html_template = (stream.name or "").endswith(".html")
        after_block = False
        for token in stream:
            if html_template and token.type == "data":
                text = re.sub(r"\n\s*", "", token.value)
                token = Token(token.lineno, "data", text.lstrip(" \t") if after_block else text)
            after_block = token.type == "block_end"
            yield token


@functools.cache
def _templates() -> Environment:
    """templates/report.html (escaped) and report.md (not: its filters make text literal)."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=lambda name: (name or "").endswith(".html"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_html_text,
        extensions=[_OneLine],
    )
    env.filters.update(
        md_inline=md_inline,
        md_line=md_line,
        quote_md=quote_md,
        # The very blockquote redact_words looks for.
        quote_html=lambda text: Markup(quote_html(text)),
    )
    return env


# How `samverkan report --out` knows a file it may replace: the HTML report names its
# generator in a meta tag in its head, the Markdown report ends with a comment (invisible when
# rendered, and its first line stays the title).
HTML_MARK = '<meta name="generator" content="samverkan report">'
MD_MARK = "<!-- written by samverkan report -->"


def is_report(path: Path) -> bool:
    """Whether ``path`` is a reflection report samverkan wrote (HTML or Markdown)."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
            f.seek(0, io.SEEK_END)
            f.seek(max(0, f.tell() - 512))
            tail = f.read()
    except OSError:
        return False
    if head.startswith(b"<!DOCTYPE html>") and HTML_MARK.encode() in head:
        return True
    return tail.rstrip().endswith(MD_MARK.encode())


def build_report(
    engine: Engine, settings: Settings, cycle_id: int, fmt: str = "html", *, words: bool = True
) -> str:
    if fmt not in ("html", "md"):
        from store.errors import InvalidInput

        raise InvalidInput(f"unknown format {fmt!r} (use html or md)")
    data = gather(engine, settings, cycle_id)
    if fmt == "html":
        assert words, "the HTML report is the one emailed, with the participants' words"
        return to_html(data)
    return to_markdown(data, words=words)


def quote_html(text: str) -> str:
    """A participant's words as the HTML report shows them."""
    return f"<blockquote>{html.escape(clean(text))}</blockquote>"


def quote_md(text: str) -> str:
    """A participant's words as the Markdown report shows them (one line, as plain text)."""
    return f"> {md_line(text)}"


def redact_words(document: str, words: list[str], replacement: str = "[erased]") -> str:
    """A stored report with these written answers replaced, in either format (erasure)."""
    for w in words:
        t = w.strip()
        document = document.replace(quote_html(t), quote_html(replacement))
        document = document.replace(quote_md(t) + "\n", quote_md(replacement) + "\n")
    return document
