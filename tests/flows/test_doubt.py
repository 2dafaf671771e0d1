"""Doubt only where there is doubt: a message whose sender died mid-delivery is found by the
next tick, in every mode and whatever cycle it belongs to, and the coordinator is told.
(How many can be in doubt after a crash, at most one per connection, is checked by
tests/e2e/test_delivery.py with a worker killed mid-stage.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from flows.cycles.overview import cycle_overview
from store.models import Message, MessageStatus
from tests.conftest import launch_learning_cycle, prefect_tick, tick

START = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)
WORKSHOP = datetime(2027, 2, 10, 8, 0, tzinfo=UTC)


def _one_left_sending(engine, settings) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A cycle whose first messages went out; one of them is put back as a crashed sender
    leaves it: ``sending``, claimed before the lease ran out."""
    cycle_id = launch_learning_cycle(engine, settings, START, WORKSHOP)
    tick(START)
    with Session(engine) as s:
        msg = s.exec(select(Message).where(Message.cycle_id == cycle_id)).first()
        assert msg is not None and msg.status == MessageStatus.sent
        msg.status = MessageStatus.sending
        msg.claimed_at = START - timedelta(seconds=settings.sending_lease_seconds + 60)
        s.add(msg)
        s.commit()
        assert msg.id is not None
        return cycle_id, msg.id


def _status_of(engine, message_id: int) -> str:  # type: ignore[no-untyped-def]
    """By id: a person has several messages, and PostgreSQL returns rows in no set order."""
    with Session(engine) as s:
        message = s.get(Message, message_id)
        assert message is not None
        return str(message.status)


def test_the_next_tick_finds_a_message_left_in_flight(network, settings) -> None:
    cycle_id, message_id = _one_left_sending(network, settings)
    # Nothing else is due: the tick still looks, and says so.
    report = tick(START + timedelta(minutes=5))
    assert report.in_doubt == 1
    assert "  1 message in doubt: a sender stopped while it was in flight" in "\n".join(
        report.lines()
    )
    assert _status_of(network, message_id) == "uncertain"
    problems = cycle_overview(network, cycle_id=cycle_id)["problems"]
    with Session(network) as s:
        to = s.get(Message, message_id).to_email  # type: ignore[union-attr]
    assert [p["to"] for p in problems] == [to]
    assert "may or may not have arrived" in problems[0]["error"]
    assert tick(START + timedelta(minutes=10)).in_doubt == 0  # told once


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_a_fanned_out_tick_finds_it_too(network, settings) -> None:
    """The distributed tick hands stages and delivery to the pool; it did not look for stale
    leases, so a killed worker's messages stayed ``sending`` until some drain ran."""
    from flows.orchestration.flows import tick as tick_flow

    _, message_id = _one_left_sending(network, settings)
    report = tick_flow(START + timedelta(minutes=5), fan_out=True)
    assert report.in_doubt == 1 and report.handed_over == []
    assert _status_of(network, message_id) == "uncertain"


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_a_prefect_tick_in_one_process_finds_it(network, settings) -> None:
    _, message_id = _one_left_sending(network, settings)
    assert prefect_tick(START + timedelta(minutes=5)).in_doubt == 1
    assert _status_of(network, message_id) == "uncertain"
