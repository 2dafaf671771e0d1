"""Small-group protection for respondent groups, checked together with the organisation × role
table they are cut from.

A respondent group is a set of organisation × role cells (its filter looks only at role and
organisation), so each of its figures is a sum of the table's finest cells. Published beside
the table, a group can give a hidden cell away: a group of one hidden cell is that cell; a
group minus the shown cells in it leaves the hidden ones; and groups and margins combine.
This module finds which groups to hide as well, by asking of every hidden figure (the
table's and the groups'): is it a linear combination of the shown ones? If so it can be
worked out exactly, and one more group (the one with the fewest people) is hidden, until no
hidden figure can be. The span is computed exactly, over the rationals. It also hides a group
whose shown figure leaves its hidden cells just their least possible values, which pins them
(as the table does with its margins, see ``indicators.protect``).

The table's own hidden cells are never shown here; groups are only ever hidden, so the
result is at least as safe as the table alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

Cell = tuple[str, str]  # organisation (or *), role (or *)
ALL = "*"


def _cells_of(cell: Cell, finest: Sequence[Cell]) -> frozenset[int]:
    org, role = cell
    return frozenset(i for i, (o, r) in enumerate(finest) if org in (ALL, o) and role in (ALL, r))


class _Span:
    """The row space of some 0/1 vectors, in reduced echelon form over the rationals."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: dict[int, list[Fraction]] = {}  # pivot column -> row

    def _reduce(self, ones: frozenset[int]) -> list[Fraction]:
        v = [Fraction(1 if i in ones else 0) for i in range(self.size)]
        for pivot, row in self.rows.items():
            if v[pivot]:
                factor = v[pivot]
                v = [a - factor * b for a, b in zip(v, row, strict=True)]
        return v

    def add(self, ones: frozenset[int]) -> None:
        v = self._reduce(ones)
        pivot = next((i for i, a in enumerate(v) if a), None)
        if pivot is None:
            return
        v = [a / v[pivot] for a in v]
        for p, row in self.rows.items():
            if row[pivot]:
                factor = row[pivot]
                self.rows[p] = [a - factor * b for a, b in zip(row, v, strict=True)]
        self.rows[pivot] = v

    def holds(self, ones: frozenset[int]) -> bool:
        return not any(self._reduce(ones))


Figure = tuple[Mapping[Cell, float], float]  # a figure's value per finest cell, its least value


def protect_groups(
    *,
    table: Sequence[Cell],
    table_hidden: set[Cell],
    members: Mapping[str, set[Cell]],
    people: Mapping[str, int],
    small: set[str],
    figures: Sequence[Figure] = (),
) -> set[str]:
    """The respondent groups whose figures are not shown.

    ``table``: every cell of the table (finest cells and margins) whose figure is known,
    shown or hidden; ``table_hidden``: those hidden. ``members``: each group's finest cells;
    ``people``: the people behind each group's figure; ``small``: groups hidden for their own
    sake. ``figures``: each figure's value per finest cell and its least possible value.
    """
    finest = sorted(c for c in table if ALL not in c)
    vectors = {c: _cells_of(c, finest) for c in table}
    index = {c: i for i, c in enumerate(finest)}
    group_vectors = {g: frozenset(index[c] for c in cells) for g, cells in members.items()}
    hidden = set(small)

    def exposed(groups_hidden: set[str]) -> set[object]:
        span = _Span(len(finest))
        for c in table:
            if c not in table_hidden:
                span.add(vectors[c])
        for g, v in group_vectors.items():
            if g not in groups_hidden:
                span.add(v)
        found: set[object] = {c for c in table_hidden if span.holds(vectors[c])}
        found |= {g for g in groups_hidden if span.holds(group_vectors[g])}
        return found

    # What the table gives away by itself (nothing, when its protection holds) is not the
    # groups' doing, and hiding groups could not help it.
    already = exposed(set(members))
    while True:
        shown = sorted((people.get(g, 0), g) for g in members if g not in hidden)
        if not shown:
            break
        leak = exposed(hidden) - already
        pinned = [g for _, g in shown if _pins(members[g], table_hidden, figures)]
        if not leak and not pinned:
            break
        if pinned and not leak:
            hidden.add(pinned[0])
            continue
        # Hide the group, fewest people first, whose hiding closes the most of the leak.
        closing = [(len(exposed(hidden | {g}) - already), n, g) for n, g in shown]
        hidden.add(min(closing)[2])
    # A hidden group that the shown figures add up to anyway hides nothing: show it (unless
    # it is small, which is never shown).
    for g in sorted(hidden - small):
        if g in exposed(hidden):
            hidden.discard(g)
    return hidden


def _pins(cells: set[Cell], table_hidden: set[Cell], figures: Sequence[Figure]) -> bool:
    """Whether a shown group leaves its hidden finest cells just their least values."""
    gone = [c for c in cells if c in table_hidden]
    return bool(gone) and any(
        sum(values.get(c, 0) for c in gone) == least * len(gone) for values, least in figures
    )
