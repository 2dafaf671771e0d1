"""Indicators from SQL, compared with values worked out by hand for a small network.

Cycle 1 (asked 8):                         Cycle 2 (asked 5):
  Org A  p1 professional  6                  p1 7
         p2 professional  8                  p2 8
         p3 professional  (no answer)        p3 9
         p4 manager       5                  (not asked)
  Org B  p5 service_user  3                  p5 5
         p6 service_user  9                  p6 7
         p7 service_user  4                  (not asked)
         p8 politician    (no answer)        (not asked)
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from flows.reporting.indicators import compute, median, to_csv, to_json


def table(engine, **kw):  # type: ignore[no-untyped-def]
    return {
        (r.cycle_id, r.organisation, r.role, r.indicator): (r.value, r.n, r.suppressed)
        for r in compute(engine, **kw).rows()
    }


def test_whole_cycle_and_organisation_indicators(engine, two_cycles) -> None:
    c1, c2 = two_cycles
    t = table(engine, min_group=1)  # nothing hidden: every figure against the hand-worked one
    assert t[(c1, "*", "*", "asked")] == (8, 8, False)
    assert t[(c1, "*", "*", "answered")] == (6, 8, False)
    assert t[(c1, "*", "*", "response_rate")] == (0.75, 8, False)
    assert t[(c1, "*", "*", "scale_mean")] == (round(35 / 6, 3), 6, False)
    assert t[(c1, "*", "*", "scale_median")] == (5.5, 6, False)
    assert t[(c1, "A", "*", "scale_mean")] == (round(19 / 3, 3), 3, False)
    assert t[(c1, "A", "*", "scale_median")] == (6, 3, False)
    assert t[(c1, "B", "*", "scale_median")] == (4, 3, False)
    assert t[(c1, "B", "service_user", "response_rate")] == (1.0, 3, False)
    assert t[(c1, "A", "professional", "response_rate")] == (round(2 / 3, 3), 3, False)
    assert t[(c2, "*", "*", "scale_mean")] == (7.2, 5, False)
    assert t[(c2, "*", "*", "scale_median")] == (7, 5, False)
    assert t[(c2, "*", "*", "scale_change")] == (round(7.2 - 35 / 6, 3), 5, False)
    assert t[(c2, "A", "professional", "scale_mean")] == (8, 3, False)


def test_small_groups_are_shown_only_as_suppressed(engine, two_cycles) -> None:
    c1, c2 = two_cycles
    t = table(engine)
    # Neither the value nor the number of people behind it.
    assert t[(c1, "A", "professional", "scale_mean")] == (None, None, True)  # two answers
    assert t[(c1, "A", "manager", "asked")] == (None, None, True)
    assert t[(c1, "A", "manager", "scale_mean")] == (None, None, True)
    assert t[(c1, "B", "politician", "response_rate")] == (None, None, True)
    assert t[(c2, "A", "professional", "scale_change")] == (None, None, True)  # 2 the cycle before
    assert t[(c2, "B", "service_user", "scale_mean")] == (None, None, True)
    # Complementary cells: organisation B (4 asked) minus its 3 service users would give the
    # one politician away, so the service users are hidden too, and then their scale figures
    # as well (their n would bound their hidden counts). Organisation A's mean can show: its
    # professionals' and its manager's are both hidden, and so are the roles' across
    # organisations.
    assert t[(c1, "B", "service_user", "asked")] == (None, None, True)
    assert t[(c1, "B", "service_user", "scale_mean")] == (None, None, True)
    assert t[(c1, "B", "*", "asked")] == (4, 4, False)
    assert t[(c1, "A", "*", "scale_mean")] == (round(19 / 3, 3), 3, False)
    assert t[(c1, "*", "professional", "scale_mean")] == (None, None, True)
    assert t[(c1, "*", "manager", "scale_mean")] == (None, None, True)
    assert t[(c1, "*", "*", "scale_mean")] == (round(35 / 6, 3), 6, False)
    looser = table(engine, min_group=2)
    assert looser[(c2, "B", "service_user", "scale_mean")] == (6, 2, False)
    # Its change is not: in cycle 1 its counts hide the one politician, so its scale does too.
    assert looser[(c2, "B", "service_user", "scale_change")] == (None, None, True)
    assert looser[(c1, "A", "professional", "scale_mean")] == (None, None, True)  # the manager


def test_one_cycle_still_knows_the_one_before(engine, two_cycles) -> None:
    _, c2 = two_cycles
    t = table(engine, cycle_ids=[c2])
    assert {k[0] for k in t} == {c2}
    assert t[(c2, "*", "*", "scale_change")][0] == round(7.2 - 35 / 6, 3)


def test_the_export_has_a_stable_documented_schema(engine, two_cycles) -> None:
    rows = compute(engine).rows()
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == [
        "schema",
        "cycle_id",
        "cycle_name",
        "cycle_start",
        "organisation",
        "role",
        "indicator",
        "value",
        "n",
        "suppressed",
    ]
    assert {r["schema"] for r in parsed} == {"samverkan.indicators/1"}
    hidden = [r for r in parsed if r["suppressed"] == "True"]
    assert hidden and all(r["value"] == "" for r in hidden)
    assert json.loads(to_json(rows))[0]["schema"] == "samverkan.indicators/1"


@pytest.mark.parametrize(
    ("histogram", "expected"),
    [
        ({5: 1}, 5),
        ({3: 1, 4: 1}, 3.5),
        ({0: 2, 10: 1}, 0),
        ({1: 1, 2: 2, 9: 1}, 2),
        ({}, None),
    ],
)
def test_median_from_a_histogram(histogram: dict[int, int], expected: float | None) -> None:
    assert median(histogram) == expected
