"""Delivery against a real SMTP server that misbehaves on purpose, and a worker killed mid-stage.

Every recipient ends sent exactly once, failed with its reason, or uncertain (the reply to a
message that went out never came); the coordinator sees which, and nothing is sent twice
unless the coordinator resends the uncertain ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from flows.cycles.approve import approve_stage
from flows.cycles.delivery import deliver
from flows.cycles.launch import launch_cycle
from flows.cycles.overview import cycle_overview
from flows.people.participants import import_participants
from flows.settings import Settings
from flows.stages import execute
from messaging.outbox import listing, resend_uncertain
from store.models import Message, Stage
from tests.smtpd import RecordingSMTP

NOW = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)


def queue_invitations(
    engine,
    settings: Settings,
    people: int | None = None,  # type: ignore[no-untyped-def]
    tmp: Path | None = None,
) -> int:
    """A cycle whose invitation is queued for every participant (no Prefect needed)."""
    if people:
        assert tmp is not None
        rows = [
            f"Person {i},person{i}@example.org,Org {i % 7},professional,sv" for i in range(people)
        ]
        csv = tmp / "many.csv"
        csv.write_text("name,email,organisation,role,language\n" + "\n".join(rows) + "\n")
        import_participants(engine, csv)
    cycle_id = launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="Vår 2027",
        start="2027-01-20T09:00",
        variables={"workshop_at": "2027-02-10T09:00", "location": "Här"},
    )
    approve_stage(engine, cycle_id=cycle_id, key="invitation")
    with Session(engine) as s:
        stage = s.exec(
            select(Stage).where(Stage.cycle_id == cycle_id, Stage.key == "invitation")
        ).one()
    from flows.templates import template_of
    from store.models import Cycle

    with Session(engine) as s:
        cycle = s.get(Cycle, cycle_id)
    execute(engine, settings, template_of(settings, cycle), stage_id=stage.id, now=NOW)  # type: ignore[arg-type]
    return cycle_id


def statuses(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return {m.to_key: str(m.status) for m in s.exec(select(Message))}


def test_misbehaving_server_every_recipient_accounted_for(network, settings, monkeypatch) -> None:
    with RecordingSMTP() as server:
        rec = server.recorder
        rec.refuse = {
            "lars.ek@goteborg.example": "550 5.1.1 No such user",
            "per.holm@vgregion.example": "451 4.3.0 Mailbox busy",
        }
        rec.drop = {"eva.nilsson@goteborg.example"}
        rec.slow = {"karin.strom@vgregion.example": 3.0}
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        monkeypatch.setenv("SAMVERKAN_SMTP_TIMEOUT", "1")
        monkeypatch.setenv("SAMVERKAN_SMTP_CONCURRENCY", "4")
        live = Settings()
        cycle_id = queue_invitations(network, live)
        report = deliver(live, network, NOW)
        assert (report.sent, report.failed, report.retry, report.uncertain) == (9, 1, 1, 2)
        got = statuses(network)
        assert got["lars.ek@goteborg.example"] == "failed"
        assert got["per.holm@vgregion.example"] == "retry"
        assert got["eva.nilsson@goteborg.example"] == "uncertain"
        assert got["karin.strom@vgregion.example"] == "uncertain"
        # The coordinator sees who failed and who is in doubt, with the reasons.
        problems = {
            p["to"]: p["error"] for p in cycle_overview(network, cycle_id=cycle_id)["problems"]
        }
        assert problems["lars.ek@goteborg.example"].startswith("550 5.1.1 No such user")
        assert "may or may not have arrived" in problems["eva.nilsson@goteborg.example"]
        assert {r["to"] for r in listing(network, cycle_id=cycle_id, statuses=["uncertain"])} == {
            "eva.nilsson@goteborg.example",
            "karin.strom@vgregion.example",
        }

        rec.refuse.pop("per.holm@vgregion.example")  # the mailbox frees up
        assert deliver(live, network, NOW).sent == 0  # not before its backoff
        later = deliver(live, network, NOW + timedelta(hours=1))
        assert (later.sent, later.uncertain) == (1, 0)
        time.sleep(2.5)  # let the slow server finish storing Karin's message
        received = Counter(to[0] for _, to, _ in rec.messages)
    assert max(received.values()) == 1  # nobody got anything twice
    assert (
        "lars.ek@goteborg.example" not in received
        and "eva.nilsson@goteborg.example" not in received
    )
    assert received["karin.strom@vgregion.example"] == 1  # arrived, though its reply was late
    assert sum(received.values()) == 11


def test_resending_uncertain_messages_is_deliberate(network, settings, monkeypatch) -> None:
    with RecordingSMTP() as server:
        server.recorder.drop = {"eva.nilsson@goteborg.example"}
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        live = Settings()
        cycle_id = queue_invitations(network, live)
        deliver(live, network, NOW)
        assert deliver(live, network, NOW + timedelta(days=1)).sent == 0  # never on its own
        server.recorder.drop.clear()
        assert resend_uncertain(network, cycle_id=cycle_id, reason="checked the relay") == 1
        assert deliver(live, network, NOW).sent == 1
        received = Counter(to[0] for _, to, _ in server.recorder.messages)
    assert received["eva.nilsson@goteborg.example"] == 1 and len(received) == 13


WORKER = """
import os, sys
from datetime import datetime, UTC
from flows.cycles.delivery import deliver
from flows.settings import Settings
from store.db import open_store
settings = Settings()
engine = open_store(settings.database_url)
print("ready", file=sys.stderr, flush=True)
sys.stdin.readline()  # start together: the test says when
print(deliver(settings, engine, datetime(2027, 1, 20, 8, tzinfo=UTC)))
"""


def start_worker(env: dict[str, str], stdout: int | None) -> subprocess.Popen[str]:
    """A worker process, ready to drain once ``go`` is called on it."""
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    assert worker.stderr.readline().strip() == "ready"
    return worker


def go(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()


@pytest.mark.subprocess
def test_a_worker_killed_mid_stage_loses_nothing_and_doubles_nothing(
    engine, settings, monkeypatch, tmp_path: Path
) -> None:
    with RecordingSMTP() as server:
        server.recorder.delay = 0.004  # a sink slow enough to kill the worker mid-stage
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        monkeypatch.setenv("SAMVERKAN_SMTP_CONCURRENCY", "4")
        live = Settings()
        cycle_id = queue_invitations(engine, live, people=2000, tmp=tmp_path)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        worker = start_worker(env, subprocess.DEVNULL)
        go(worker)
        started = time.monotonic()  # the worker's drain runs on from NOW by this clock
        deadline = time.monotonic() + 120
        while len(server.recorder.messages) < 600 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        delivered_before = len(server.recorder.messages)
        assert 600 <= delivered_before < 2000, "the worker was not killed mid-stage"

        with Session(engine) as s:
            in_flight = s.exec(
                select(func.count()).select_from(Message).where(Message.status == "sending")
            ).one()
        # A new worker, a moment later by the same clock: the messages the dead one had in
        # flight are now in doubt.
        monkeypatch.setenv("SAMVERKAN_SENDING_LEASE_SECONDS", "0.001")
        later = NOW + timedelta(seconds=time.monotonic() - started + 1)
        report = deliver(Settings(), engine, later)
        received = Counter(to[0] for _, to, _ in server.recorder.messages)
        assert max(received.values()) == 1  # no recipient has it twice
        got = statuses(engine)
        assert set(got.values()) <= {"sent", "uncertain"}
        for to, status in got.items():
            if status == "sent":
                assert received[to] == 1  # marked sent: the sink has it
        uncertain = [to for to, st in got.items() if st == "uncertain"]
        # In doubt: at most the messages in flight on the 4 connections, one batch.
        assert len(uncertain) == report.uncertain <= in_flight <= 4
        resend_uncertain(engine, cycle_id=cycle_id)
        deliver(Settings(), engine, NOW)
        received = Counter(to[0] for _, to, _ in server.recorder.messages)
    assert set(received) == set(got)  # after the deliberate resend, everyone has it
    assert all(status == "sent" for status in statuses(engine).values())


@pytest.mark.subprocess
def test_two_workers_drain_one_outbox_without_doubles(engine, settings, monkeypatch, tmp_path):
    """Two worker processes at once (SKIP LOCKED claims on PostgreSQL, one writer at a time on
    SQLite): every message delivered once, none left."""
    with RecordingSMTP() as server:
        server.recorder.delay = 0.001
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        monkeypatch.setenv("SAMVERKAN_SMTP_CONCURRENCY", "4")
        queue_invitations(engine, Settings(), people=2000, tmp=tmp_path)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        # Both are started and ready before either drains, so neither can finish the outbox
        # before the other has begun.
        workers = [start_worker(env, subprocess.PIPE) for _ in range(2)]
        for worker in workers:
            go(worker)
        outputs = [w.communicate(timeout=300) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        received = Counter(to[0] for _, to, _ in server.recorder.messages)
    assert len(received) == 2000 and max(received.values()) == 1
    assert set(statuses(engine).values()) == {"sent"}
    sent_by = [int(out.split(" sent")[0]) for out, _ in outputs]
    assert sum(sent_by) == 2000 and min(sent_by) > 0  # both did part of the work
