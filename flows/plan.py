"""The plan of a cycle: timings, anchors and due times. Pure functions, no I/O.

A stage is due at an absolute time, or at its anchor's time plus a signed offset. The anchor
time of a meeting is when the meeting starts (a reminder "2 days before the workshop" means
before the workshop itself); of any other stage, when it is due.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from store.errors import InvalidInput

_DURATION = re.compile(r"(\d+)\s*(w|d|h|m)", re.I)
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60}


class PlanError(InvalidInput):
    """The plan is inconsistent: an unknown anchor or a cycle of anchors."""


def parse_duration(text: str) -> timedelta:
    """'2d', '3h', '90m', '1w', '1d12h' or '0' -> timedelta."""
    raw = str(text).strip()
    if raw == "0":
        return timedelta(0)
    compact = raw.replace(" ", "").lower()
    if not compact or _DURATION.sub("", compact):
        raise InvalidInput(f"invalid duration {raw!r}: use e.g. 2d, 3h, 90m, 1w or 1d12h")
    seconds = sum(int(n) * _UNIT[u.lower()] for n, u in _DURATION.findall(compact))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    parts = []
    for unit in ("d", "h", "m"):
        size = _UNIT[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name like Europe/Stockholm)"
        ) from None


def parse_when(text: str, tz: ZoneInfo, *, what: str = "date") -> datetime:
    """An ISO date-time; without an offset it is read in ``tz``. A bare date means 00:00."""
    raw = str(text).strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"invalid {what} {raw!r}: use ISO 8601, e.g. 2027-02-10T09:00 or 2027-02-10T09:00+01:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
        # A wall-clock time skipped by a daylight-saving jump does not exist.
        roundtrip = value.astimezone(ZoneInfo("UTC")).astimezone(tz)
        if roundtrip.replace(tzinfo=None) != value.replace(tzinfo=None):
            raise InvalidInput(f"invalid {what} {raw!r}: that time does not exist in {tz.key}")
    return value


@dataclass(frozen=True)
class Timing:
    at: datetime | None = None
    anchor: str | None = None
    offset: timedelta = timedelta(0)

    def describe(self) -> str:
        if self.anchor is None:
            return "fixed"
        if not self.offset:
            return f"with {self.anchor}"
        side = "after" if self.offset > timedelta(0) else "before"
        return f"{format_duration(self.offset)} {side} {self.anchor}"


@dataclass(frozen=True)
class PlanItem:
    key: str
    timing: Timing
    meeting_start: datetime | None = None  # set for meetings: what others anchor on


def resolve(items: Iterable[PlanItem]) -> dict[str, datetime]:
    """Due time of every stage; raises PlanError on an unknown anchor or a cycle."""
    by_key: Mapping[str, PlanItem] = {i.key: i for i in items}
    due: dict[str, datetime] = {}
    visiting: list[str] = []

    def visit(key: str) -> datetime:
        if key in due:
            return due[key]
        if key in visiting:
            loop = " -> ".join([*visiting[visiting.index(key) :], key])
            raise PlanError(f"stages depend on each other in a circle: {loop}")
        item = by_key[key]
        visiting.append(key)
        if item.timing.anchor is None:
            if item.timing.at is None:
                raise PlanError(f"stage {key!r} has neither a time nor an anchor")
            when = item.timing.at
        else:
            anchor = by_key.get(item.timing.anchor)
            if anchor is None:
                raise PlanError(
                    f"stage {key!r} is anchored on unknown stage {item.timing.anchor!r}"
                )
            visit(anchor.key)
            when = anchor_time(anchor, due) + item.timing.offset
        visiting.pop()
        due[key] = when
        return when

    for key in by_key:
        visit(key)
    return due


def anchor_time(item: PlanItem, due: Mapping[str, datetime]) -> datetime:
    return item.meeting_start if item.meeting_start is not None else due[item.key]
