"""Indicators per instrument question and respondent group: export schema
``samverkan.indicators/2``, made for combining many collaborations' figures.

Each row is one cycle × instrument question × respondent group × organisation × role ×
indicator. The organisation × role rows (respondent group ``*``) are those of schema 1, with
the scale figures per question instead of all scale answers together; the respondent group
rows have organisation and role ``*``. The counts (``asked``, ``answered``,
``response_rate``) are per cycle (question ``*``). Each scale question gets ``scale_mean``,
``scale_median``, ``scale_change`` (organisation × role rows only) and ``scale_histogram``,
whose ``histogram`` column holds the count of every value given (``0:1 7:3 8:2``), so that a
combined median is exact.

Small groups are protected as in schema 1, per question for the scale figures; the respondent
groups are checked together with the organisation × role table (flows/reporting/groups.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from flows.reporting import groups as respondent
from flows.reporting.indicators import (
    ALL,
    Group,
    Indicators,
    _rollup,
    _text_cell,
    compute,
    median,
)
from flows.templates.instruments import Instrument
from store import queries
from store.errors import InvalidInput
from store.models import Cycle, pk

SCHEMA = "samverkan.indicators/2"
COUNTS = ("asked", "answered", "response_rate")
SCALE = ("scale_mean", "scale_median", "scale_change", "scale_histogram")


@dataclass(frozen=True)
class Row:
    schema: str
    collaboration: str
    cycle_id: int
    cycle_name: str
    cycle_start: str
    year: int
    instrument: str
    instrument_version: int | None
    question: str
    respondent_group: str
    organisation: str
    role: str
    indicator: str
    value: float | None
    n: int | None
    suppressed: bool
    histogram: str


def histogram_text(h: Mapping[int, int]) -> str:
    return " ".join(f"{v}:{n}" for v, n in sorted(h.items()) if n)


def parse_histogram(text: str) -> dict[int, int]:
    """``"0:1 7:3"`` as {0: 1, 7: 3}; raises ValueError for anything else."""
    found: dict[int, int] = {}
    for part in text.split():
        value, _, count = part.partition(":")
        found[int(value)] = found.get(int(value), 0) + int(count)
        if found[int(value)] < 0:
            raise ValueError(part)
    return found


Question = tuple[str | None, int | None, str]  # instrument, version, question id
Figure = tuple[float | None, int | None, bool]  # value, people behind it, suppressed


@dataclass
class ByQuestion:
    base: Indicators  # the counts, shared by every question
    per_question: dict[int, dict[Question, Indicators]]  # cycle -> question -> its scale
    instruments: dict[int, Instrument | None]  # the instrument whose groups a cycle uses
    bound: dict[int, list[Any]]  # cycle -> [instrument, version] its follow-up asked
    collaboration: str

    # -- respondent groups -------------------------------------------------------------------

    def members(self, cycle_id: int) -> dict[str, set[respondent.Cell]]:
        inst = self.instruments.get(cycle_id)
        if inst is None:
            return {}
        found: dict[str, set[respondent.Cell]] = {g.name: set() for g in inst.groups}
        for _, org, role in self.base.groups(cycle_id):
            if ALL in (org, role):
                continue
            name = inst.group_of(org, role)
            if name is not None:
                found[name].add((org, role))
        return {g: cells for g, cells in found.items() if cells}

    def _hidden_groups(self, ind: Indicators, cycle_id: int, family: str) -> set[str]:
        members = self.members(cycle_id)
        if not members:
            return set()
        table = [(g[1], g[2]) for g in ind.groups(cycle_id)]
        table_hidden = {(g[1], g[2]) for g in ind.hidden(cycle_id, family)}

        def total(by: Mapping[Group, float], cells: set[respondent.Cell]) -> float:
            return sum(by.get((cycle_id, o, r), 0) for o, r in cells)

        def per_cell(by: Mapping[Group, float]) -> dict[respondent.Cell, float]:
            return {(g[1], g[2]): float(v) for g, v in by.items() if g[0] == cycle_id}

        if family == "counts":
            people = {g: int(total(ind.asked, c)) for g, c in members.items()}
            small = {g for g, n in people.items() if n < ind.min_group}
            figures: list[respondent.Figure] = [
                (per_cell(ind.asked), 1.0),
                (per_cell(ind.answered), 0.0),
            ]
        else:
            counts_hidden = self._hidden_groups(ind, cycle_id, "counts")
            n_scale = {g: v[0] for g, v in ind.scale.items()}
            people = {g: int(total(n_scale, c)) for g, c in members.items()}
            small = {g for g, n in people.items() if 0 < n < ind.min_group or g in counts_hidden}
            sums = {g: float(sum(v * k for v, k in h.items())) for g, h in ind.distribution.items()}
            gaps = {g: 10.0 * n_scale.get(g, 0) - sums.get(g, 0.0) for g in ind.groups(cycle_id)}
            figures = [(per_cell(n_scale), 0.0), (per_cell(sums), 0.0), (per_cell(gaps), 0.0)]
        return respondent.protect_groups(
            table=table,
            table_hidden=table_hidden,
            members=members,
            people=people,
            small=small,
            figures=figures,
        )

    # -- rows --------------------------------------------------------------------------------

    def _row_maker(self, cycle: Cycle) -> Any:
        start = cycle.start_at.date()

        def row(
            q: Question,
            group: str,
            org: str,
            role: str,
            indicator: str,
            got: Figure,
            histogram: str = "",
        ) -> Row:
            value, n, hidden = got
            return Row(
                SCHEMA,
                self.collaboration,
                pk(cycle),
                cycle.name,
                start.isoformat(),
                start.year,
                q[0] or "",
                q[1],
                q[2],
                group,
                org,
                role,
                indicator,
                value,
                n,
                hidden,
                histogram,
            )

        return row

    def rows(self) -> list[Row]:
        out: list[Row] = []
        for cycle in self.base.cycles:
            c = pk(cycle)
            inst_id, inst_version = (self.bound.get(c) or ["", None])[:2]

            row = self._row_maker(cycle)
            cycle_q: Question = (inst_id, inst_version, ALL)
            for g in self.base.groups(c):
                for indicator in COUNTS:
                    out.append(
                        row(cycle_q, ALL, g[1], g[2], indicator, self.base.value(g, indicator))
                    )
            members = self.members(c)
            hidden = self._hidden_groups(self.base, c, "counts")
            for name, cells in members.items():
                asked = sum(self.base.asked.get((c, o, r), 0) for o, r in cells)
                answered = sum(self.base.answered.get((c, o, r), 0) for o, r in cells)
                figures = {
                    "asked": float(asked),
                    "answered": float(answered),
                    "response_rate": round(answered / asked, 3) if asked else 0.0,
                }
                for indicator in COUNTS:
                    got: Figure = (
                        (None, None, True) if name in hidden else (figures[indicator], asked, False)
                    )
                    out.append(row(cycle_q, name, ALL, ALL, indicator, got))
            for q, ind in sorted(
                self.per_question.get(c, {}).items(), key=lambda kv: (kv[0][0] or "", kv[0][2])
            ):
                for g in ind.groups(c):
                    for indicator in SCALE[:3]:
                        got = ind.value(g, indicator)
                        if got[0] is None and not got[2]:
                            continue
                        out.append(row(q, ALL, g[1], g[2], indicator, got))
                    mean = ind.value(g, "scale_mean")
                    if mean[0] is not None or mean[2]:
                        text = "" if mean[2] else histogram_text(ind.distribution.get(g, {}))
                        got = (None, mean[1], mean[2])
                        out.append(row(q, ALL, g[1], g[2], "scale_histogram", got, text))
                scale_hidden = self._hidden_groups(ind, c, "scale")
                for name, cells in members.items():
                    h: dict[int, int] = defaultdict(int)
                    for o, r in cells:
                        for v, k in ind.distribution.get((c, o, r), {}).items():
                            h[v] += k
                    n = sum(h.values())
                    if name in scale_hidden:
                        for indicator in ("scale_mean", "scale_median", "scale_histogram"):
                            out.append(row(q, name, ALL, ALL, indicator, (None, None, True)))
                        continue
                    if not n:
                        continue
                    mean_value = round(sum(v * k for v, k in h.items()) / n, 3)
                    out.append(row(q, name, ALL, ALL, "scale_mean", (mean_value, n, False)))
                    out.append(row(q, name, ALL, ALL, "scale_median", (median(h), n, False)))
                    out.append(
                        row(
                            q,
                            name,
                            ALL,
                            ALL,
                            "scale_histogram",
                            (None, n, False),
                            histogram_text(h),
                        )
                    )
        return out


def compute_by_question(
    engine: Engine,
    instruments: Mapping[str, Instrument],
    *,
    cycle_ids: Sequence[int] | None = None,
    min_group: int = 3,
    collaboration: str = "",
) -> ByQuestion:
    base = compute(engine, cycle_ids=cycle_ids, min_group=min_group)
    ids = sorted({g[0] for g in [*base.asked, *base.answered, *base.scale]} | set(base.chronology))
    with Session(engine) as session:
        histograms = queries.scale_histograms_by_question(session, cycle_ids=ids)
        bound = queries.followup_instruments(session, cycle_ids=ids)
    dist: dict[Question, dict[Group, dict[int, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for cycle_id, org, role, inst, version, qid, value, n in histograms:
        for group in _rollup((cycle_id, str(org), str(role))):
            dist[(inst, version, qid)][group][int(value)] += int(n)
    per_question: dict[int, dict[Question, Indicators]] = defaultdict(dict)
    for q, by_group in dist.items():
        stats = {
            g: (sum(h.values()), sum(v * k for v, k in h.items()) / sum(h.values()))
            for g, h in by_group.items()
        }
        ind = Indicators(
            base.cycles,
            base.chronology,
            min_group,
            base.asked,
            base.answered,
            stats,
            {g: dict(h) for g, h in by_group.items()},
        )
        for cycle_id in {g[0] for g in by_group}:
            per_question[cycle_id][q] = ind
    chosen: dict[int, Instrument | None] = {}
    for cycle_id, (inst_id, _version) in bound.items():
        chosen[cycle_id] = instruments.get(inst_id)
    return ByQuestion(base, dict(per_question), chosen, bound, collaboration)


def to_csv(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    for r in rows:
        data = {k: _text_cell(v) if isinstance(v, str) else v for k, v in asdict(r).items()}
        data["value"] = "" if r.value is None else r.value
        data["n"] = "" if r.n is None else r.n
        data["instrument_version"] = "" if r.instrument_version is None else r.instrument_version
        writer.writerow(data)
    return buffer.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)


def export(
    engine: Engine,
    instruments: Mapping[str, Instrument],
    *,
    cycle_ids: Sequence[int] | None = None,
    min_group: int = 3,
    fmt: str = "csv",
    collaboration: str = "",
) -> str:
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"unknown format {fmt!r} (use csv or json)")
    if cycle_ids:
        with Session(engine) as session:
            for cycle_id in cycle_ids:
                queries.get_cycle(session, cycle_id=cycle_id)
    rows = compute_by_question(
        engine,
        instruments,
        cycle_ids=cycle_ids,
        min_group=min_group,
        collaboration=collaboration,
    ).rows()
    return to_csv(rows) if fmt == "csv" else to_json(rows)
