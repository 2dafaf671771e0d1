"""Indicators of a collaboration, per cycle and across cycles, computed in SQL.

For each cycle and each group — organisation × role, organisation, role, and everyone — the
store answers three GROUP BY queries at the finest grain (cycle × organisation × role): how
many were asked the follow-up questions, how many answered (whose voices were heard, and
whose were missing), and how often each scale value was given. No Python loop walks the
responses: the coarser groups add those aggregates up (exact, since each person has one
organisation and one role), and count, mean and median are read off the histograms.

Small groups: a group with fewer than ``min_group`` people behind a number (default 3) is
shown only as "fewer than 3", so that no single service user can be identified.

Export schema ``samverkan.indicators/1``, one row per cycle × organisation × role ×
indicator: ``schema, cycle_id, cycle_name, cycle_start, organisation, role, indicator, value,
n, suppressed``. ``organisation`` or ``role`` is ``*`` for all. Indicators: ``asked``,
``answered``, ``response_rate`` (0-1), ``scale_mean``, ``scale_median``, ``scale_change``
(the mean's change from the same group in the previous cycle). ``n`` is the number of people
behind the value; a suppressed value is empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from store.models import (
    Cycle,
    CycleStatus,
    Message,
    MessageStatus,
    Organisation,
    Participant,
    Response,
    Stage,
    pk,
)

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
    n: int
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
    if answered:
        who: Any = Response.participant_id
        query = (
            sql_select(
                col(Response.cycle_id),
                col(Organisation.name),
                col(Participant.role),
                func.count(func.distinct(who)),
            )
            .join(Participant, col(Participant.id) == who)
            .where(col(Response.cycle_id).in_(cycles))
            .group_by(col(Response.cycle_id), col(Organisation.name), col(Participant.role))
        )
    else:
        who = Message.participant_id
        query = (
            sql_select(
                col(Message.cycle_id),
                col(Organisation.name),
                col(Participant.role),
                func.count(func.distinct(who)),
            )
            .join(Stage, col(Stage.id) == Message.stage_id)
            .join(Participant, col(Participant.id) == who)
            .where(
                col(Message.cycle_id).in_(cycles),
                col(Stage.kind) == "followup",
                col(Message.status) == MessageStatus.sent.value,
            )
            .group_by(col(Message.cycle_id), col(Organisation.name), col(Participant.role))
        )
    query = query.join(Organisation, col(Organisation.id) == Participant.organisation_id)
    found: dict[Group, int] = defaultdict(int)
    for cycle_id, org, role, n in session.execute(query).all():
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
    query = (
        sql_select(
            col(Response.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            col(Response.scale_value),
            func.count(),
        )
        .join(Participant, col(Participant.id) == Response.participant_id)
        .join(Organisation, col(Organisation.id) == Participant.organisation_id)
        .where(col(Response.cycle_id).in_(cycles), col(Response.scale_value).is_not(None))
        .group_by(
            col(Response.cycle_id),
            col(Organisation.name),
            col(Participant.role),
            col(Response.scale_value),
        )
    )
    dist: dict[Group, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for cycle_id, org, role, value, n in session.execute(query).all():
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


@dataclass
class Indicators:
    cycles: list[Cycle]  # the cycles shown, oldest first
    chronology: list[int]  # every cycle's id, oldest first: who came before whom
    min_group: int
    asked: dict[Group, int]
    answered: dict[Group, int]
    scale: dict[Group, tuple[int, float]]
    distribution: dict[Group, dict[int, int]]

    def previous(self, cycle_id: int) -> int | None:
        i = self.chronology.index(cycle_id)
        return self.chronology[i - 1] if i > 0 else None

    def groups(self, cycle_id: int) -> list[Group]:
        keys = {g for g in [*self.asked, *self.answered, *self.scale] if g[0] == cycle_id}
        return sorted(keys, key=lambda g: (g[1] == ALL, g[1], g[2] == ALL, g[2]))

    def value(self, group: Group, indicator: str) -> tuple[float | None, int, bool]:
        """(value, people behind it, suppressed)."""
        asked, answered = self.asked.get(group, 0), self.answered.get(group, 0)
        n_scale, mean = self.scale.get(group, (0, 0.0))
        if indicator == "asked":
            n, value = asked, float(asked)
        elif indicator == "answered":
            n, value = max(asked, answered), float(answered)
        elif indicator == "response_rate":
            n, value = asked, (answered / asked if asked else 0.0)
        elif indicator == "scale_mean":
            n, value = n_scale, mean
        elif indicator == "scale_median":
            n, value = n_scale, median(self.distribution.get(group, {})) or 0.0
        elif indicator == "scale_change":
            before = self.previous(group[0])
            prior = self.scale.get((before, group[1], group[2])) if before else None
            n = min(n_scale, prior[0]) if prior else 0
            value = mean - prior[1] if prior else 0.0
            if not prior or not n_scale:
                return None, 0, False
        else:
            raise KeyError(indicator)
        if n == 0 and indicator.startswith("scale"):
            return None, 0, False
        if n < self.min_group:
            return None, n, True
        return round(value, 3), n, False

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
        every = list(
            session.exec(
                select(Cycle)
                .where(Cycle.status != CycleStatus.cancelled.value)
                .order_by(col(Cycle.start_at), col(Cycle.id))
            ).all()
        )
        ids = [pk(c) for c in every]
        wanted = set(cycle_ids) if cycle_ids is not None else set(ids)
        chosen = [c for c in every if pk(c) in wanted]
        extra = {ids[ids.index(pk(c)) - 1] for c in chosen if ids.index(pk(c)) > 0}
        query_ids = [c for c in ids if c in wanted | extra]
        asked = _people(session, query_ids, answered=False)
        answered = _people(session, query_ids, answered=True)
        scale, dist = _scale(session, query_ids)
    return Indicators(chosen, ids, min_group, asked, answered, scale, dist)


def to_csv(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        data = asdict(row)
        data["value"] = "" if row.value is None else row.value
        writer.writerow(data)
    return buffer.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)
