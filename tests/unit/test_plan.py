"""The plan's timing rules, including properties over random plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.cycles.plan import (
    MAX_DAYS,
    PlanError,
    PlanItem,
    Timing,
    format_duration,
    parse_duration,
    parse_when,
    resolve,
    zone,
)
from store.errors import InvalidInput

T0 = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("2d", timedelta(days=2)),
        ("3h", timedelta(hours=3)),
        ("90m", timedelta(minutes=90)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0", timedelta(0)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "2", "2x", "d2", "-2d", "2d junk"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid duration"):
        parse_duration(text)


def test_a_stage_follows_its_meeting_start_not_its_send_time() -> None:
    meeting_start = T0 + timedelta(days=21)
    items = [
        PlanItem("invitation", Timing(at=T0)),
        PlanItem("workshop", Timing(anchor="invitation"), meeting_start=meeting_start),
        PlanItem("reminder", Timing(anchor="workshop", offset=-timedelta(days=2))),
        PlanItem("followup", Timing(anchor="workshop", offset=timedelta(days=7))),
        PlanItem("nudge", Timing(anchor="followup", offset=timedelta(days=5))),
    ]
    due = resolve(items)
    assert due == {
        "invitation": T0,
        "workshop": T0,
        "reminder": meeting_start - timedelta(days=2),
        "followup": meeting_start + timedelta(days=7),
        "nudge": meeting_start + timedelta(days=12),
    }


def test_circles_and_unknown_anchors_are_refused() -> None:
    with pytest.raises(PlanError, match="a -> b -> a"):
        resolve([PlanItem("a", Timing(anchor="b")), PlanItem("b", Timing(anchor="a"))])
    with pytest.raises(PlanError, match="unknown stage 'ghost'"):
        resolve([PlanItem("a", Timing(anchor="ghost"))])


def test_local_times_and_zones() -> None:
    stockholm = zone("Europe/Stockholm")
    assert parse_when("2027-02-10T09:00", stockholm).utcoffset() == timedelta(hours=1)
    assert parse_when("2027-07-10T09:00", stockholm).utcoffset() == timedelta(hours=2)
    assert parse_when("2027-02-10T09:00+00:00", stockholm).utcoffset() == timedelta(0)
    with pytest.raises(InvalidInput, match="does not exist in Europe/Stockholm"):
        parse_when("2027-03-28T02:30", stockholm)
    with pytest.raises(InvalidInput, match="invalid date '10/2/2027'"):
        parse_when("10/2/2027", stockholm)
    with pytest.raises(InvalidInput, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


@st.composite
def plans(draw: st.DrawFn) -> list[PlanItem]:
    """Random acyclic plans: each stage anchors on an earlier one or has a fixed time."""
    n = draw(st.integers(1, 12))
    items = []
    for i in range(n):
        offset = timedelta(hours=draw(st.integers(-500, 500)))
        meeting = T0 + timedelta(hours=draw(st.integers(0, 2000))) if draw(st.booleans()) else None
        if i and draw(st.booleans()):
            anchor = f"s{draw(st.integers(0, i - 1))}"
            items.append(PlanItem(f"s{i}", Timing(anchor=anchor, offset=offset), meeting))
        else:
            items.append(PlanItem(f"s{i}", Timing(at=T0 + offset), meeting))
    return draw(st.permutations(items))


@given(plans())
def test_every_relative_time_is_its_anchor_time_plus_its_offset(items: list[PlanItem]) -> None:
    due = resolve(items)
    by_key = {i.key: i for i in items}
    for item in items:
        if item.timing.anchor is None:
            assert due[item.key] == item.timing.at
        else:
            anchor = by_key[item.timing.anchor]
            base = anchor.meeting_start or due[anchor.key]
            assert due[item.key] == base + item.timing.offset


@given(st.integers(0, MAX_DAYS * 24 * 60))  # longer ones are refused (tests/flows/test_bounds.py)
def test_durations_round_trip_by_the_minute(minutes: int) -> None:
    delta = timedelta(minutes=minutes)
    assert parse_duration(format_duration(delta)) == delta
