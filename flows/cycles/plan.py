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
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from store.errors import InvalidInput

if TYPE_CHECKING:
    from store.models import Stage

_DURATION = re.compile(r"(\d+)\s*(w|d|h|m)", re.I)
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
# Far enough for any plan, near enough that a time plus an offset stays a valid date.
MAX_DAYS = 3650
YEARS = (1970, 2199)


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
    if seconds > MAX_DAYS * 86400:
        raise InvalidInput(f"duration {raw!r} is too long: at most {MAX_DAYS} days")
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
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise InvalidInput(
            f"invalid {what} {raw!r}: the year must be between {YEARS[0]} and {YEARS[1]}"
        )
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


# Re-sequencing -----------------------------------------------------------------------------

# Stage states, as far as the plan is concerned.
OPEN = frozenset({"pending", "approved"})  # not run yet: may be changed freely
RAN = frozenset({"running", "awaiting_approval", "done", "failed"})  # ran: frozen
CLOSED = frozenset({"skipped", "cancelled"})
# Not run, and not run by the tick: its time follows a meeting that was cancelled, so running
# it then would treat the meeting as held. It waits for the coordinator, who can give it a
# time of its own (reschedule), another anchor (move), or drop it (skip, cancel).
HELD = "held"


@dataclass(frozen=True)
class Step:
    """One stage as the plan sees it: where it stands, when it is due, whether it ran."""

    key: str
    kind: str
    timing: Timing
    status: str = "pending"
    meeting_start: datetime | None = None
    reminder: bool = False  # sent only to those who have not yet done something

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def has_run(self) -> bool:
        return self.status in RAN

    @property
    def is_held(self) -> bool:
        return self.status == HELD

    @property
    def announced_meeting(self) -> bool:
        return self.kind == "meeting" and self.status == "done"

    def item(self) -> PlanItem:
        return PlanItem(self.key, self.timing, self.meeting_start)


@dataclass(frozen=True)
class Plan:
    """The ordered stages of a cycle. Every operation returns a new plan or raises PlanError,
    so a refused operation leaves the plan as it was."""

    steps: tuple[Step, ...]

    def get(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        known = ", ".join(s.key for s in self.steps)
        raise PlanError(f"no stage {key!r} (stages: {known})")

    def due(self) -> dict[str, datetime]:
        return resolve(s.item() for s in self.steps)

    def dependents(self, key: str) -> list[str]:
        """Stages whose time follows ``key``, directly or through others, in plan order."""
        found: set[str] = set()
        frontier = {key}
        while frontier:
            nxt = {s.key for s in self.steps if s.timing.anchor in frontier} - found
            found |= nxt
            frontier = nxt
        return [s.key for s in self.steps if s.key in found]

    def _replace(self, step: Step, **changes: object) -> Plan:
        new = replace_step(step, **changes)
        return Plan(tuple(new if s.key == step.key else s for s in self.steps))

    def _checked(self) -> Plan:
        self.due()  # raises PlanError on a circle or an unknown anchor
        return self._settled()

    def _open(self, key: str, verb: str) -> Step:
        step = self.get(key)
        if not (step.is_open or step.is_held):
            raise PlanError(f"cannot {verb} {key!r}: it is {step.status}")
        return step

    def cancelled_meeting_behind(self, key: str) -> str | None:
        """The cancelled meeting this stage's time follows, through anchors that have not run
        (a stage that ran happened at its own time, whatever became of its anchor)."""
        by_key = {s.key: s for s in self.steps}
        step, seen = by_key[key], {key}
        while step.timing.anchor is not None and step.timing.anchor not in seen:
            anchor = by_key.get(step.timing.anchor)
            if anchor is None or anchor.has_run:
                return None
            if anchor.kind == "meeting" and anchor.status == "cancelled":
                return anchor.key
            seen.add(anchor.key)
            step = anchor
        return None

    def _settled(self) -> Plan:
        """Hold every stage still to run whose time follows a cancelled meeting; let go of a
        held one that no longer does (it was given a time or an anchor of its own)."""
        steps = []
        for s in self.steps:
            if s.is_open or s.is_held:
                behind = self.cancelled_meeting_behind(s.key)
                if behind and not s.is_held:
                    s = replace_step(s, status=HELD)
                elif not behind and s.is_held:
                    s = replace_step(s, status="pending")
            steps.append(s)
        return Plan(tuple(steps))

    def add(self, step: Step) -> Plan:
        """Insert a new stage after every stage due at or before it."""
        if any(s.key == step.key for s in self.steps):
            raise PlanError(f"there is already a stage {step.key!r}")
        if step.timing.anchor is not None:
            self.get(step.timing.anchor)
        trial = Plan((*self.steps, step))._checked()
        due = trial.due()
        at = due[step.key]
        position = len(self.steps)
        # Walk back over every stage due later that has not run (skipped ones included).
        while position > 0 and (
            not self.steps[position - 1].has_run and due[self.steps[position - 1].key] > at
        ):
            position -= 1
        return Plan((*self.steps[:position], step, *self.steps[position:]))._checked()

    def move(self, key: str, *, after: str | None = None, before: str | None = None) -> Plan:
        """Put a stage right after or before another; a relative timing takes it as anchor."""
        if (after is None) == (before is None):
            raise PlanError("move takes exactly one of --after or --before")
        target_key = after or before
        assert target_key is not None
        step = self._open(key, "move")
        target = self.get(target_key)
        if target.key == key:
            raise PlanError(f"cannot move {key!r} relative to itself")
        if before and target.has_run:
            raise PlanError(f"cannot move {key!r} before {target_key!r}: that stage has run")
        if step.timing.anchor is not None:
            step = replace_step(step, timing=Timing(anchor=target.key, offset=step.timing.offset))
        rest = [s for s in self.steps if s.key != key]
        index = [s.key for s in rest].index(target.key) + (1 if after else 0)
        return Plan((*rest[:index], step, *rest[index:]))._checked()

    def skip(self, key: str) -> Plan:
        step = self.get(key)
        if not (step.is_open or step.is_held or step.status == "awaiting_approval"):
            raise PlanError(f"cannot skip {key!r}: it is {step.status}")
        return self._replace(step, status="skipped")._checked()

    def reschedule(self, key: str, at: datetime) -> Plan:
        """A new time: a meeting's start (even once announced), or a stage's due time."""
        step = self.get(key)
        if step.kind == "meeting":
            if step.status in CLOSED:
                raise PlanError(f"cannot reschedule {key!r}: it is {step.status}")
            return self._replace(step, meeting_start=at)._checked()
        step = self._open(key, "reschedule")
        return self._replace(step, timing=Timing(at=at))._checked()

    def cancel(self, key: str) -> Plan:
        """Cancel a stage. Cancelling a meeting also cancels the reminders anchored on it, and
        holds every other stage still to run whose time follows it."""
        step = self.get(key)
        if not (
            step.is_open
            or step.is_held
            or step.status == "awaiting_approval"
            or step.announced_meeting
        ):
            raise PlanError(f"cannot cancel {key!r}: it is {step.status}")
        plan = self._replace(step, status="cancelled")
        if step.kind == "meeting":
            for d in plan.steps:
                if d.timing.anchor == key and d.reminder and (d.is_open or d.is_held):
                    plan = plan._replace(d, status="cancelled")
        return plan._checked()

    def cancel_remaining(self) -> Plan:
        """Cancel every stage that has not run (or waits for approval): the cycle is called off."""
        return Plan(
            tuple(
                replace_step(s, status="cancelled")
                if s.is_open or s.is_held or s.status == "awaiting_approval"
                else s
                for s in self.steps
            )
        )

    def edit(self, key: str) -> Plan:
        """Template, audience and approval do not change the plan's shape: only check."""
        step = self.get(key)
        if not (step.is_open or step.is_held or step.status == "awaiting_approval"):
            raise PlanError(f"cannot edit {key!r}: it is {step.status}")
        return self._replace(step, status="pending")._checked()


def first_runnable(stages: Iterable[tuple[str, str, datetime]], now: datetime) -> str | None:
    """The stage tick runs next: the first, in plan order, of (key, status, due) that is open
    and due, provided every stage before it has finished. A stage that waits (not due yet, or
    awaiting approval) holds back the stages behind it."""
    for key, status, due in stages:
        if status in CLOSED or status in {"done", "failed", HELD}:
            continue  # a held stage waits for the coordinator, not for a time
        return key if status in OPEN and due <= now else None
    return None


def replace_step(step: Step, **changes: object) -> Step:
    from dataclasses import replace

    return replace(step, **changes)  # type: ignore[arg-type]


def plan_items(stages: list[Stage]) -> list[PlanItem]:
    """The plan as stored stage rows describe it."""
    return [
        PlanItem(
            key=s.key,
            timing=Timing(at=s.at, anchor=s.anchor_key, offset=timedelta(seconds=s.offset_seconds)),
            meeting_start=(
                datetime.fromisoformat(s.config["starts_at"]) if s.kind == "meeting" else None
            ),
        )
        for s in stages
    ]


def recompute_due(stages: list[Stage]) -> None:
    """Set every stage's due time from its timing (anchors followed transitively)."""
    due = resolve(plan_items(stages))
    for s in stages:
        s.due_at = due[s.key]
