"""Indicators of a collaboration, per cycle and across cycles, computed in SQL.

For each cycle and each group — organisation × role, organisation, role, and everyone — the
store answers three GROUP BY queries at the finest grain (cycle × organisation × role): how
many were asked the follow-up questions, how many answered (whose voices were heard, and
whose were missing), and how often each scale value was given. No Python loop walks the
responses: the coarser groups add those aggregates up (exact, since each person has one
organisation and one role), and count, mean and median are read off the histograms.

Small groups: the counts of a group fewer than ``min_group`` (default 3) were asked, and the
scale figures of a group with fewer scale answers, are suppressed, so that no single service
user can be identified; so are enough other cells that no suppressed one can be recovered
from the margins (secondary suppression, see ``protect``). A suppressed value publishes
neither itself nor the number of people behind it.

Export schema ``samverkan.indicators/1``, one row per cycle × organisation × role ×
indicator: ``schema, cycle_id, cycle_name, cycle_start, organisation, role, indicator, value,
n, suppressed``. ``organisation`` or ``role`` is ``*`` for all. Indicators: ``asked``,
``answered``, ``response_rate`` (0-1), ``scale_mean``, ``scale_median``, ``scale_change``
(the mean's change from the same group in the previous cycle). ``n`` is the number of people
behind the value; both are empty when suppressed.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session

from store import queries
from store.errors import InvalidInput
from store.models import Cycle, pk

SCHEMA = "samverkan.indicators/1"
ALL = "*"
INDICATORS = ("asked", "answered", "response_rate", "scale_mean", "scale_median", "scale_change")

Group = tuple[int, str, str]  # cycle id, organisation (or *), role (or *)


@dataclass(frozen=True)
class Row:
    schema: str
    cycle_id: int
    cycle_name: str
    cycle_start: str
    organisation: str
    role: str
    indicator: str
    value: float | None
    n: int | None
    suppressed: bool


def _rollup(key: Group) -> tuple[Group, ...]:
    """A finest-grain group and every coarser group it belongs to."""
    cycle_id, org, role = key
    return (key, (cycle_id, org, ALL), (cycle_id, ALL, role), (cycle_id, ALL, ALL))


def _people(session: Session, cycles: list[int], answered: bool) -> dict[Group, int]:
    """People asked a follow-up (a sent follow-up message), or who answered one.

    Counted in SQL per cycle × organisation × role; each person has one organisation and one
    role, so those counts add up exactly to every coarser group.
    """
    count = queries.people_who_answered if answered else queries.people_asked
    found: dict[Group, int] = defaultdict(int)
    for cycle_id, org, role, n in count(session, cycle_ids=cycles):
        for group in _rollup((cycle_id, str(org), str(role))):
            found[group] += int(n)
    return dict(found)


def _scale(
    session: Session, cycles: list[int]
) -> tuple[dict[Group, tuple[int, float]], dict[Group, dict[int, int]]]:
    """Per group: (answers, mean) and the distribution of the scaling answers.

    SQL counts each value per cycle × organisation × role; coarser groups add those
    histograms up, and count, mean and median are read off them exactly.
    """
    dist: dict[Group, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for cycle_id, org, role, value, n in queries.scale_histograms(session, cycle_ids=cycles):
        for group in _rollup((cycle_id, str(org), str(role))):
            dist[group][int(value)] += int(n)
    stats = {
        group: (sum(h.values()), sum(v * n for v, n in h.items()) / sum(h.values()))
        for group, h in dist.items()
    }
    return stats, {group: dict(h) for group, h in dist.items()}


def median(histogram: dict[int, int]) -> float | None:
    """The median of values given as {value: count}."""
    total = sum(histogram.values())
    if not total:
        return None
    ordered = sorted(histogram.items())

    def nth(k: int) -> int:  # the k-th smallest value, 0-based
        seen = 0
        for value, n in ordered:
            seen += n
            if k < seen:
                return value
        raise IndexError(k)

    if total % 2:
        return float(nth(total // 2))
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


# Secondary suppression ---------------------------------------------------------------------
#
# One cycle's cells and their margins form a table in which every organisation's cells add up
# to the organisation, every role's to the role, and organisations and roles to the total.
# Drawn as a graph, with a node per organisation, per role, one for "all organisations" and
# one for "all roles", each cell (organisation x role, organisation x *, * x role, * x *) is an
# edge, and each node is one of those sums. The hidden values can then be moved around any
# cycle of hidden edges (add to one, take from the next) without changing a single published
# figure; a hidden edge on no such cycle (a bridge of the hidden edges) is pinned down by the
# margins, alone or combined. So: hide the small cells, then, while a hidden cell is a bridge,
# also hide the cheapest path that closes a cycle through it.

Cell = tuple[str, str]  # organisation (or *), role (or *)

# The total is the one figure everybody wants; hide it for another cell's sake only when
# there is no other way.
_TOTAL_COST = 10**9


def _ends(cell: Cell) -> tuple[str, str]:
    return f"o:{cell[0]}", f"r:{cell[1]}"


def _bridges(edges: set[Cell]) -> list[Cell]:
    """The cells among ``edges`` that lie on no cycle of ``edges``, in a stable order."""
    graph: dict[str, list[tuple[str, Cell]]] = defaultdict(list)
    for cell in sorted(edges):
        a, b = _ends(cell)
        graph[a].append((b, cell))
        graph[b].append((a, cell))
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    found: list[Cell] = []
    for root in sorted(graph):
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack: list[tuple[str, Cell | None, Iterator[tuple[str, Cell]]]] = [
            (root, None, iter(graph[root]))
        ]
        while stack:
            node, via, neighbours = stack[-1]
            step = next(neighbours, None)
            if step is None:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        found.append(via)  # type: ignore[arg-type]
                continue
            other, edge = step
            if edge == via:
                continue
            if other in order:
                low[node] = min(low[node], order[other])
            else:
                order[other] = low[other] = len(order)
                stack.append((other, edge, iter(graph[other])))
    return sorted(found)


def _cheapest_detour(cells: dict[Cell, int], hidden: set[Cell], bridge: Cell) -> list[Cell]:
    """The visible cells to hide so that ``bridge`` closes a cycle, fewest people first."""
    graph: dict[str, list[tuple[str, Cell]]] = defaultdict(list)
    for cell in sorted(cells):
        if cell != bridge:
            a, b = _ends(cell)
            graph[a].append((b, cell))
            graph[b].append((a, cell))
    start, goal = _ends(bridge)
    best: dict[str, int] = {start: 0}
    came: dict[str, tuple[str, Cell]] = {}
    queue = [(0, start)]
    while queue:
        cost, node = heapq.heappop(queue)
        if node == goal:
            break
        if cost > best[node]:
            continue
        for other, cell in graph[node]:
            price = 0 if cell in hidden else 1 + cells[cell]
            if cell == (ALL, ALL) and cell not in hidden:
                price += _TOTAL_COST
            if cost + price < best.get(other, cost + price + 1):
                best[other] = cost + price
                came[other] = (node, cell)
                heapq.heappush(queue, (cost + price, other))
    if goal not in came:
        # Not reachable when the table is complete; hiding everything is the safe answer.
        return [c for c in cells if c not in hidden]
    path, node = [], goal
    while node != start:
        node, cell = came[node]
        path.append(cell)
    return [c for c in path if c not in hidden]


def _relations(cells: Iterable[Cell]) -> list[tuple[list[Cell], Cell]]:
    """Every margin of the table as (the cells that add up to it, the margin)."""
    present = sorted(cells)
    found: dict[Cell, list[Cell]] = defaultdict(list)
    for org, role in present:
        if org != ALL and role != ALL:
            found[(org, ALL)].append((org, role))
            found[(ALL, role)].append((org, role))
    by_org = [c for c in present if c[0] != ALL and c[1] == ALL]
    by_role = [c for c in present if c[0] == ALL and c[1] != ALL]
    return [(parts, whole) for whole, parts in sorted(found.items())] + [
        (by_org, (ALL, ALL)),
        (by_role, (ALL, ALL)),
    ]


def _at_their_least(
    hidden: set[Cell], relation: tuple[list[Cell], Cell], figures: Sequence[Floor]
) -> bool:
    """Whether a shown margin leaves its hidden cells just their least possible values (a
    listed group has someone in it; nothing is negative), which pins each of them."""
    parts, whole = relation
    if whole in hidden:
        return False
    gone = [c for c in parts if c in hidden]
    return bool(gone) and any(
        sum(values.get(c, 0) for c in gone) == least * len(gone) for values, least in figures
    )


Floor = tuple[dict[Cell, float], float]  # one figure's value per cell, and its least value


def protect(cells: dict[Cell, int], small: set[Cell], figures: Sequence[Floor] = ()) -> set[Cell]:
    """The cells to hide: the small ones, and enough others that no margin, nor any
    combination of margins, gives a hidden one away.

    ``cells`` maps every cell of one cycle's table (with its margins) to the people behind
    it. Always every cell of the table is given a detour: its graph has no bridge, since
    each organisation x role cell lies on the cycle through its organisation, the total and
    its role. ``figures`` are the published figures of those cells with their least values:
    a margin that leaves its hidden cells exactly their least would pin them, so one more of
    its cells is hidden (or the margin itself, when all of them are).
    """
    hidden = set(small)
    relations = _relations(cells)
    while True:
        bridges = _bridges(hidden)
        if bridges:
            hidden.update(_cheapest_detour(cells, hidden, bridges[0]))
            continue
        pinned = next((r for r in relations if _at_their_least(hidden, r, figures)), None)
        if pinned is None:
            return hidden
        parts, whole = pinned
        shown = sorted((cells[c], c) for c in parts if c not in hidden)
        hidden.add(shown[0][1] if shown else whole)


@dataclass
class Indicators:
    cycles: list[Cycle]  # the cycles shown, oldest first
    chronology: list[int]  # every cycle's id, oldest first: who came before whom
    min_group: int
    asked: dict[Group, int]
    answered: dict[Group, int]
    scale: dict[Group, tuple[int, float]]
    distribution: dict[Group, dict[int, int]]
    _hidden: dict[tuple[int, str], set[Group]] = field(default_factory=dict, repr=False)

    def previous(self, cycle_id: int) -> int | None:
        i = self.chronology.index(cycle_id)
        return self.chronology[i - 1] if i > 0 else None

    def groups(self, cycle_id: int) -> list[Group]:
        keys = {g for g in [*self.asked, *self.answered, *self.scale] if g[0] == cycle_id}
        return sorted(keys, key=lambda g: (g[1] == ALL, g[1], g[2] == ALL, g[2]))

    def hidden(self, cycle_id: int, family: str) -> set[Group]:
        """The groups of one cycle whose counts (``"counts"``: asked, answered, response
        rate) or scale figures (``"scale"``: mean, median, change) are not published.

        Worked out from that cycle alone, so that every export and report, of one cycle or
        of many, hides the same cells.
        """
        key = (cycle_id, family)
        if key not in self._hidden:
            groups = self.groups(cycle_id)
            if family == "counts":
                people = {g: self.asked.get(g, 0) for g in groups}
                small = {g for g in groups if people[g] < self.min_group}
                values: list[tuple[Mapping[Group, float], float]] = [
                    (self.asked, 1.0),
                    (self.answered, 0.0),
                ]
            else:
                counts_hidden = self.hidden(cycle_id, "counts")
                # A group seen to have no answers at all has no scale answers either: hiding
                # its (empty) figures would protect nothing, so it is no cell to hide.
                groups = [g for g in groups if g in counts_hidden or self.answered.get(g, 0)]
                people = {g: self.scale.get(g, (0, 0.0))[0] for g in groups}
                # A group whose counts are hidden shows no scale figures either: their n is a
                # floor under its hidden counts (with the margins it can pin a small group's
                # size), and none would tell that none of it answered the scale.
                small = {g for g in groups if 0 < people[g] < self.min_group or g in counts_hidden}
                sums = {
                    g: float(sum(v * n for v, n in self.distribution.get(g, {}).items()))
                    for g in groups
                }
                # How far the answers fall short of all being 10: nothing left means 10s.
                gaps = {g: 10.0 * people[g] - sums[g] for g in groups}
                values = [(people, 0.0), (sums, 0.0), (gaps, 0.0)]
            cells = {(g[1], g[2]): n for g, n in people.items()}
            figures = [
                ({(g[1], g[2]): float(v) for g, v in by_group.items() if g[0] == cycle_id}, least)
                for by_group, least in values
            ]
            chosen = protect(cells, {(g[1], g[2]) for g in small}, figures)
            self._hidden[key] = {(cycle_id, org, role) for org, role in chosen}
        return self._hidden[key]

    def value(self, group: Group, indicator: str) -> tuple[float | None, int | None, bool]:
        """(value, people behind it, suppressed); a suppressed value shows neither.

        ``(None, 0, False)`` when there is nothing to show (no scale answers, no cycle
        before).
        """
        asked, answered = self.asked.get(group, 0), self.answered.get(group, 0)
        n_scale, mean = self.scale.get(group, (0, 0.0))
        if indicator in ("asked", "answered", "response_rate"):
            if group in self.hidden(group[0], "counts"):
                return None, None, True
            value = {
                "asked": float(asked),
                "answered": float(answered),
                "response_rate": answered / asked if asked else 0.0,
            }[indicator]
            return round(value, 3), asked, False
        if indicator not in ("scale_mean", "scale_median", "scale_change"):
            raise KeyError(indicator)
        hidden = group in self.hidden(group[0], "scale")
        if not n_scale and not hidden:
            return None, 0, False
        if indicator == "scale_change":
            before = self.previous(group[0])
            if before is None:
                return None, 0, False
            prior_group = (before, group[1], group[2])
            prior_n, prior_mean = self.scale.get(prior_group, (0, 0.0))
            prior_hidden = prior_group in self.hidden(before, "scale")
            if not prior_n and not prior_hidden:
                return None, 0, False
            if hidden or prior_hidden:
                return None, None, True
            return round(mean - prior_mean, 3), min(n_scale, prior_n), False
        if hidden:
            return None, None, True
        if indicator == "scale_mean":
            return round(mean, 3), n_scale, False
        return median(self.distribution.get(group, {})), n_scale, False

    def rows(self) -> list[Row]:
        out = []
        for cycle in self.cycles:
            for group in self.groups(pk(cycle)):
                for indicator in INDICATORS:
                    value, n, hidden = self.value(group, indicator)
                    if value is None and not hidden:
                        continue
                    out.append(
                        Row(
                            SCHEMA,
                            pk(cycle),
                            cycle.name,
                            cycle.start_at.date().isoformat(),
                            group[1],
                            group[2],
                            indicator,
                            value,
                            n,
                            hidden,
                        )
                    )
        return out


def compute(
    engine: Engine, *, cycle_ids: Iterable[int] | None = None, min_group: int = 3
) -> Indicators:
    """Indicators of the given cycles (default: all that were not cancelled), oldest first.

    The cycle before the first one asked for is included, so that its change can be given.
    """
    with Session(engine) as session:
        every = queries.cycles_not_cancelled(session)
        ids = [pk(c) for c in every]
        wanted = set(cycle_ids) if cycle_ids is not None else set(ids)
        chosen = [c for c in every if pk(c) in wanted]
        extra = {ids[ids.index(pk(c)) - 1] for c in chosen if ids.index(pk(c)) > 0}
        query_ids = [c for c in ids if c in wanted | extra]
        asked = _people(session, query_ids, answered=False)
        answered = _people(session, query_ids, answered=True)
        scale, dist = _scale(session, query_ids)
    return Indicators(chosen, ids, min_group, asked, answered, scale, dist)


# A cell that starts like this is a formula to a spreadsheet (=HYPERLINK(...) phones home);
# OWASP's advice on CSV injection is to make it text with a leading single quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _text_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def to_csv(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        data = {k: _text_cell(v) if isinstance(v, str) else v for k, v in asdict(row).items()}
        data["value"] = "" if row.value is None else row.value
        writer.writerow(data)
    return buffer.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)


def export(
    engine: Engine, *, cycle_ids: Sequence[int] | None = None, min_group: int = 3, fmt: str = "csv"
) -> str:
    """What ``samverkan indicators`` prints: the rows of the given cycles (default: all), as
    CSV or JSON. An unknown cycle id is a NotFound."""
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"unknown format {fmt!r} (use csv or json)")
    if cycle_ids:
        with Session(engine) as session:
            for cycle_id in cycle_ids:
                queries.get_cycle(session, cycle_id=cycle_id)
    rows = compute(engine, cycle_ids=cycle_ids, min_group=min_group).rows()
    return to_csv(rows) if fmt == "csv" else to_json(rows)
