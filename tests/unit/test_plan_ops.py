"""Property tests of re-sequencing: random operations interleaved with ticks keep the plan
consistent. No stage runs twice, anchors never form a circle, every relative time is its
anchor's time plus its offset, and nothing that ran is changed (except an announced meeting,
which may be rescheduled or cancelled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.cycles.plan import Plan, PlanError, Step, Timing, first_runnable, resolve

T0 = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)


def learning_cycle() -> Plan:
    return Plan(
        (
            Step("invitation", "email", Timing(at=T0)),
            Step(
                "workshop",
                "meeting",
                Timing(anchor="invitation"),
                meeting_start=T0 + timedelta(days=21),
            ),
            Step(
                "reminder",
                "email",
                Timing(anchor="workshop", offset=-timedelta(days=2)),
                reminder=True,
            ),
            Step("followup", "followup", Timing(anchor="workshop", offset=timedelta(days=7))),
            Step(
                "nudge", "email", Timing(anchor="followup", offset=timedelta(days=5)), reminder=True
            ),
            Step("reflection", "reflection", Timing(anchor="workshop", offset=timedelta(days=14))),
        )
    )


def run_due(plan: Plan, now: datetime, ran: list[str]) -> Plan:
    """What tick does, with tick's own rule for what runs next."""
    while True:
        due = plan.due()
        key = first_runnable(((s.key, s.status, due[s.key]) for s in plan.steps), now)
        if key is None:
            return plan
        ran.append(key)
        plan = plan._replace(plan.get(key), status="done")


ops = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(0, 40 * 24)),
        st.tuples(st.just("add"), st.integers(0, 9), st.integers(-200, 400), st.booleans()),
        st.tuples(st.just("move"), st.integers(0, 20), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("skip"), st.integers(0, 20)),
        st.tuples(st.just("reschedule"), st.integers(0, 20), st.integers(0, 40 * 24)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("edit"), st.integers(0, 20)),
    ),
    max_size=30,
)


def pick(plan: Plan, i: int) -> str:
    return plan.steps[i % len(plan.steps)].key


def apply(plan: Plan, op: tuple, n: int) -> Plan:  # type: ignore[type-arg]
    name = op[0]
    if name == "add":
        _, anchor_i, hours, meeting = op
        if anchor_i % 3 == 0:
            timing = Timing(at=T0 + timedelta(hours=hours))
        else:
            timing = Timing(anchor=pick(plan, anchor_i), offset=timedelta(hours=hours))
        start = T0 + timedelta(hours=abs(hours) + 24) if meeting else None
        return plan.add(
            Step(
                f"new{n}",
                "meeting" if meeting else "email",
                timing,
                meeting_start=start,
                reminder=not meeting and hours % 2 == 0,
            )
        )
    if name == "move":
        _, a, b, after = op
        key, target = pick(plan, a), pick(plan, b)
        return plan.move(key, after=target) if after else plan.move(key, before=target)
    if name == "reschedule":
        return plan.reschedule(pick(plan, op[1]), T0 + timedelta(hours=op[2]))
    return getattr(plan, name)(pick(plan, op[1]))


def check(before: Plan, after: Plan, name: str) -> None:
    due = after.due()  # no circle, no unknown anchor
    by_key = {s.key: s for s in after.steps}
    assert len(by_key) == len(after.steps)
    for step in after.steps:  # relative time = anchor time + offset
        if step.timing.anchor is not None:
            anchor = by_key[step.timing.anchor]
            assert due[step.key] == (anchor.meeting_start or due[anchor.key]) + step.timing.offset
    for old in before.steps:  # nothing that ran changes, but for an announced meeting
        if old.has_run:
            new = by_key[old.key]
            if old.announced_meeting and name in {"reschedule", "cancel"}:
                assert (new.kind, new.timing) == (old.kind, old.timing)
                continue
            assert new == old


@settings(max_examples=300, deadline=None)
@given(ops)
def test_random_resequencing_keeps_the_plan_consistent(sequence: list[tuple]) -> None:  # type: ignore[type-arg]
    plan = learning_cycle()
    ran: list[str] = []
    for n, op in enumerate(sequence):
        if op[0] == "tick":
            plan = run_due(plan, T0 + timedelta(hours=op[1]), ran)
            continue
        try:
            after = apply(plan, op, n)
        except PlanError:
            continue  # refused: the plan is unchanged, which the next step relies on
        check(plan, after, op[0])
        plan = after
    assert len(ran) == len(set(ran)), f"a stage ran twice: {ran}"
    plan = run_due(plan, T0 + timedelta(days=3650), ran)
    assert len(ran) == len(set(ran))


def test_moving_an_anchor_moves_its_dependents_transitively() -> None:
    plan = learning_cycle()._replace(learning_cycle().get("invitation"), status="done")
    plan = plan._replace(plan.get("workshop"), status="done")
    moved = plan.reschedule("workshop", T0 + timedelta(days=28))
    due = moved.due()
    assert due["reminder"] == T0 + timedelta(days=26)
    assert due["nudge"] == T0 + timedelta(days=28 + 7 + 5)
    assert moved.dependents("workshop") == ["reminder", "followup", "nudge", "reflection"]


def test_cancelling_an_announced_meeting_cancels_its_reminders_and_holds_what_follows() -> None:
    plan = learning_cycle()
    plan = plan._replace(plan.get("workshop"), status="done")
    cancelled = plan.cancel("workshop")
    assert {s.key: s.status for s in cancelled.steps} == {
        "invitation": "pending",
        "workshop": "cancelled",
        "reminder": "cancelled",
        "followup": "held",
        "nudge": "held",
        "reflection": "held",
    }
    assert cancelled.cancelled_meeting_behind("nudge") == "workshop"
    # Held stages do not run, and do not hold back the invitation before them.
    ran: list[str] = []
    run_due(cancelled, T0 + timedelta(days=3650), ran)
    assert ran == ["invitation"]
    # A time of its own lets the follow-up go, and the reminder that follows it.
    freed = cancelled.reschedule("followup", T0 + timedelta(days=30))
    assert {
        s.key: s.status for s in freed.steps if s.key in {"followup", "nudge", "reflection"}
    } == {
        "followup": "pending",
        "nudge": "pending",
        "reflection": "held",
    }
    # Another anchor, too; and a held stage can be skipped or cancelled.
    moved = cancelled.move("reflection", after="invitation")
    assert moved.get("reflection").status == "pending"
    assert cancelled.skip("reflection").get("reflection").status == "skipped"
    assert cancelled.cancel("followup").get("nudge").status == "held"
    assert {s.status for s in cancelled.cancel_remaining().steps} == {"cancelled"}


def test_refusals() -> None:
    plan = learning_cycle()
    done = plan._replace(plan.get("invitation"), status="done")
    with pytest.raises(PlanError, match="cannot skip 'invitation': it is done"):
        done.skip("invitation")
    with pytest.raises(PlanError, match="cannot move 'invitation': it is done"):
        done.move("invitation", after="workshop")
    with pytest.raises(PlanError, match="in a circle"):
        plan.move("followup", after="nudge")
    with pytest.raises(PlanError, match="already a stage 'followup'"):
        plan.add(Step("followup", "email", Timing(at=T0)))
    with pytest.raises(PlanError, match="no stage 'party'"):
        plan.skip("party")


def test_a_new_stage_goes_after_everything_due_before_it() -> None:
    plan = learning_cycle().add(
        Step("politicians", "email", Timing(anchor="workshop", offset=timedelta(days=1)))
    )
    assert [s.key for s in plan.steps] == [
        "invitation",
        "workshop",
        "reminder",
        "politicians",
        "followup",
        "nudge",
        "reflection",
    ]
    assert resolve(s.item() for s in plan.steps)["politicians"] == T0 + timedelta(days=22)


def test_a_new_stage_is_placed_past_skipped_stages_due_later() -> None:
    plan = learning_cycle().skip("nudge")
    plan = plan.add(
        Step(
            "second",
            "meeting",
            Timing(anchor="followup", offset=timedelta(days=1)),
            meeting_start=T0 + timedelta(days=50),
        )
    )
    assert [s.key for s in plan.steps].index("second") < [s.key for s in plan.steps].index("nudge")
