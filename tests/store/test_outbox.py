"""The outbox layer on its own, with the in-memory transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from flows.cycles.delivery import sender_info
from messaging.outbox import claim_batch, drain, resend_uncertain
from messaging.ratelimit import RateLimit
from messaging.transports.base import Envelope, Receipt, TemporaryFailure
from messaging.transports.memory import MemoryTransport
from store.models import Message
from tests.e2e.test_delivery import NOW, queue_invitations


def test_ids_are_deterministic_and_each_person_keeps_their_order(network, settings) -> None:
    cycle_id = queue_invitations(network, settings)
    with Session(network) as s:  # a second message for everyone, queued behind the first
        for m in list(s.exec(select(Message))):
            s.add(
                Message(
                    cycle_id=m.cycle_id,
                    stage_id=m.stage_id,
                    participant_id=m.participant_id,
                    to_email=m.to_email,
                    to_key=m.to_key,
                    to_name=m.to_name,
                    revision=1,
                    category=m.category,
                    subject="Second",
                    text=m.text,
                    html=m.html,
                )
            )
        s.commit()
    lanes: list[MemoryTransport] = []

    def connect() -> MemoryTransport:
        lanes.append(MemoryTransport())
        return lanes[-1]

    report = drain(network, sender_info(settings), connect, now=NOW, concurrency=4)
    assert report.sent == 26 and len(lanes) == 4
    sent = [e for lane in lanes for e in lane.sent]
    assert len({e.message_id for e in sent}) == 26
    assert all(e.message_id.startswith(f"<samverkan.{cycle_id}.") for e in sent)
    for lane in lanes:  # within a lane, a person's first message precedes their second
        seen: dict[str, list[str]] = {}
        for msg in lane.messages():
            seen.setdefault(msg["To"].addresses[0].addr_spec, []).append(str(msg["Subject"]))
        assert all(subjects[-1] == "Second" and len(subjects) == 2 for subjects in seen.values())
    with Session(network) as s:
        ids = {m.message_id for m in s.exec(select(Message))}
    assert ids == {e.message_id for e in sent}  # the stored ids are the ones sent


def test_a_message_left_sending_past_its_lease_becomes_uncertain(network, settings) -> None:
    queue_invitations(network, settings)
    with Session(network) as s:
        s.exec(
            update(Message)
            .where(col(Message.to_key) == "per.holm@vgregion.example")
            .values(status="sending", claimed_at=datetime.now(UTC) - timedelta(hours=1))
        )
        s.commit()
    memory = MemoryTransport()
    report = drain(network, sender_info(settings), lambda: memory, now=NOW)
    assert (report.sent, report.uncertain) == (12, 1)
    assert "per.holm@vgregion.example" not in {e.recipient for e in memory.sent}


def test_a_drain_that_loses_the_race_for_a_batch_claims_the_next(network, settings) -> None:
    """On SQLite two drains can read the same ready rows; the one whose claim comes second
    must look again, not stop while messages are waiting."""
    queue_invitations(network, settings)  # 13 queued
    with Session(network) as mine, Session(network) as other:
        real = mine.exec
        raced: list[int] = []

        class Rows:
            def __init__(self, ids: list[int]) -> None:
                self.ids = ids

            def all(self) -> list[int]:
                return self.ids

        def exec_(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = real(statement, *args, **kwargs)
            if not raced and statement.is_select:
                ids = list(result.all())
                raced.extend(c.id for c in claim_batch(other, now=NOW, limit=5))
                return Rows(ids)  # what this drain read before the other claimed it
            return result

        mine.exec = exec_  # type: ignore[method-assign]
        got = claim_batch(mine, now=NOW, limit=5)
    assert len(raced) == 5
    assert len(got) == 5 and not {m.id for m in got} & set(raced)


class Stopping(MemoryTransport):
    """The sender stops (a crash, a kill) as the first message is handed over."""

    async def send(self, envelope: Envelope) -> Receipt:
        raise RuntimeError("the sender was stopped")


class RefusingOnce(MemoryTransport):
    """The receiving server asks to try one address again later, once."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address, self.refused = address, False

    async def send(self, envelope: Envelope) -> Receipt:
        if envelope.recipient == self.address and not self.refused:
            self.refused = True
            raise TemporaryFailure("451 4.7.1 try again later")
        return await super().send(envelope)


@pytest.mark.parametrize(
    "now",
    [datetime(2040, 3, 1, 8, 0, tzinfo=UTC), datetime(2001, 3, 1, 8, 0, tzinfo=UTC)],
    ids=["far-future", "far-past"],
)
def test_leases_and_retries_follow_the_time_the_drain_is_given(
    network, settings, now, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tick --now` walks a cycle through simulated time: a message in flight when the sender
    stopped is in doubt once its lease has run out by that clock, not by the wall clock, and a
    retry waits its backoff by that clock too."""
    import messaging.outbox as outbox

    cycle_id = queue_invitations(network, settings)  # 13 queued
    info = sender_info(settings)  # a 600 s lease, retries from 60 s
    with monkeypatch.context() as killed, pytest.raises(RuntimeError, match="the sender was"):
        # Killed: nothing runs after it, not even the return of what was not handed over.
        killed.setattr(outbox, "_release", lambda session, unsent: None)
        drain(network, info, Stopping, now=now, batch=32)  # all 13 claimed in one batch
    quiet = MemoryTransport()
    report = drain(network, info, lambda: quiet, now=now + timedelta(minutes=5))
    assert (report.sent, report.uncertain, quiet.sent) == (0, 0, [])  # still in flight
    report = drain(network, info, lambda: quiet, now=now + timedelta(minutes=11))
    assert (report.sent, report.uncertain, quiet.sent) == (0, 13, [])  # the lease ran out

    assert resend_uncertain(network, cycle_id=cycle_id) == 13
    later = now + timedelta(minutes=12)
    server = RefusingOnce("per.holm@vgregion.example")
    report = drain(network, info, lambda: server, now=later)
    assert (report.sent, report.retry) == (12, 1)
    report = drain(network, info, lambda: server, now=later + timedelta(seconds=20))
    assert report.sent == 0  # the first backoff is 30 to 60 s
    report = drain(network, info, lambda: server, now=later + timedelta(seconds=61))
    assert report.sent == 1
    assert [e.recipient for e in server.sent].count("per.holm@vgregion.example") == 1


class FailingLimit(RateLimit):
    """A shared limit whose server goes away after two messages."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def wait(self) -> None:
        self.asked += 1
        if self.asked > 2:
            raise ConnectionError("the limit's server went away")


def test_a_drain_stopped_by_an_error_leaves_in_doubt_only_what_it_handed_over(
    network, settings
) -> None:
    """What a drain had claimed but never handed over goes back to the queue when it stops
    with an error: the next drain sends it, and only a message that was in flight is in doubt
    (an error of the transport as it was handed over) or none (the limit could not be asked
    before the next one)."""
    queue_invitations(network, settings)  # 13 queued
    info = sender_info(settings)
    with pytest.raises(RuntimeError, match="the sender was stopped"):
        drain(network, info, Stopping, now=NOW)
    with Session(network) as s:
        assert sorted(str(m.status) for m in s.exec(select(Message))) == ["queued"] * 12 + [
            "sending"
        ]
    memory = MemoryTransport()
    with pytest.raises(ConnectionError):
        drain(network, info, lambda: memory, now=NOW, limit=FailingLimit())
    assert len(memory.sent) == 2
    with Session(network) as s:
        got = sorted(str(m.status) for m in s.exec(select(Message)))
    assert got == ["queued"] * 10 + ["sending"] + ["sent"] * 2
    assert drain(network, info, lambda: memory, now=NOW).sent == 10
    assert len({e.recipient for e in memory.sent}) == len(memory.sent) == 12


def test_two_installations_never_share_a_message_id(network, settings, tmp_path) -> None:
    """Two installations alike in every way (domain, cycle, rows) still differ in their ids:
    a mail program that saw one installation's message must not take the other's for it."""
    from flows.people.participants import import_participants
    from flows.settings import Settings
    from store.db import open_store
    from tests.conftest import EXAMPLE_CSV

    other_settings = Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}")
    other = open_store(other_settings.database_url)
    import_participants(other, EXAMPLE_CSV)
    sent: list[set[str]] = []
    for engine, its_settings in ((network, settings), (other, other_settings)):
        queue_invitations(engine, its_settings)
        memory = MemoryTransport()
        assert drain(engine, sender_info(its_settings), lambda m=memory: m, now=NOW).sent == 13
        assert all(e.message_id.endswith("@coordination.example>") for e in memory.sent)
        sent.append({e.message_id for e in memory.sent})
    other.dispose()
    assert len(sent[0]) == len(sent[1]) == 13
    assert not sent[0] & sent[1]


class RefusesOnce(MemoryTransport):
    """A server that says "try again later" to each message the first time."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def send(self, envelope: Envelope) -> Receipt:
        if envelope.message_id not in self.refused:
            self.refused.append(envelope.message_id)
            raise TemporaryFailure("451 try again later")
        return await super().send(envelope)


def test_a_retried_message_keeps_its_message_id(network, settings) -> None:
    queue_invitations(network, settings)
    server = RefusesOnce()
    first = drain(network, sender_info(settings), lambda: server, now=NOW)
    assert (first.sent, first.retry) == (0, 13)
    later = drain(network, sender_info(settings), lambda: server, now=NOW + timedelta(hours=2))
    assert later.sent == 13
    assert [e.message_id for e in server.sent] == server.refused  # the same ids, resent
    with Session(network) as s:
        stored = {m.message_id for m in s.exec(select(Message))}
    assert stored == set(server.refused)


def test_a_long_drain_keeps_its_claims_fresh_for_the_other_drains(
    network, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain's clock runs on from the time it was given: a batch claimed 750 s into a
    drain (under a strict rate cap, say) is stamped then, not at the drain's start, so
    another drain looking for crashed claims does not take it for one."""
    import messaging.outbox as outbox

    queue_invitations(network, settings)  # 13 queued
    elapsed = [0.0]
    monkeypatch.setattr(outbox, "_monotonic", lambda: elapsed[0])
    found_stale: list[int] = []

    class Slow(MemoryTransport):
        async def send(self, envelope: Envelope) -> Receipt:
            elapsed[0] += 250  # each message takes 250 s: a batch of 2 stays within the lease
            with Session(network) as other:  # what another drain sees meanwhile
                found_stale.append(
                    outbox.mark_stale_uncertain(
                        other,
                        now=NOW + timedelta(seconds=elapsed[0]),
                        lease_seconds=settings.sending_lease_seconds,
                    )
                )
                other.commit()
            return await super().send(envelope)

    slow = Slow()
    report = drain(network, sender_info(settings), lambda: slow, now=NOW, batch=2)
    assert (report.sent, report.uncertain) == (13, 0)
    assert set(found_stale) == {0}
    with Session(network) as s:
        assert {m.status for m in s.exec(select(Message))} == {"sent"}
