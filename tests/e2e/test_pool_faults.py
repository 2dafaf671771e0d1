"""Distributed mode broken on purpose: a real Prefect server on PostgreSQL, `samverkan worker
--pool` processes, a stage of 2,000 and a real SMTP server, and then

- a worker killed (SIGKILL to it and every process it started, as when its machine dies)
  while it delivers: its runs are marked Crashed by the zombie automation `samverkan deploy`
  made, the next tick reports what it left in flight, at most one message per connection is
  in doubt, and after `outbox resend --uncertain` everyone has the message;
- the Prefect server restarted while a cycle is being advanced: nothing lost, nothing twice,
  and the next tick runs;
- SIGTERM to `samverkan worker --pool` started with SIGINT ignored (as `nohup … &` does):
  the run in flight is finished and nothing is left running; a second signal stops at once,
  and the runs it stopped are Crashed with the reason, not left Running.

Linux only (the process tree is read from /proc); needs SAMVERKAN_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from flows.settings import Settings
from store.db import open_store
from store.models import Message
from tests.conftest import launch_learning_cycle
from tests.prefect_server import (
    ROOT,
    SAMVERKAN,
    PrefectServer,
    drop_database,
    fresh_database,
    start_pool_worker,
    store_url,
)
from tests.smtpd import RecordingSMTP

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.chaos,
    pytest.mark.timeout(900),  # a server, workers, 4,000 messages and a two-minute crash
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

PEOPLE = 2000
CONNECTIONS = 4
DUE = 2  # the invitation and the workshop's calendar invite are due at launch


# --- processes ---------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        found.setdefault(int(fields[1]), []).append(int(entry))
    return found


def tree(pid: int) -> set[int]:
    """The process and every live process below it."""
    children, seen, todo = _children(), set(), [pid]
    while todo:
        here = todo.pop()
        if here in seen:
            continue
        seen.add(here)
        todo.extend(children.get(here, []))
    return {p for p in seen if _alive(p)}


def signal_all(pids: set[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # one that had ended already
            os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    print(f"{time.strftime('%H:%M:%S')} waiting for {what}", flush=True)  # shown with -s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(every)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def end(worker: Worker) -> None:
    """After a test: the worker and every process below it, at once (the runs live in
    sessions of their own, out of reach of a signal to the worker's group)."""
    for pid in tree(worker.proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.proc.wait()


def start_worker(env: dict[str, str], log: Path, *, sigint_ignored: bool = False) -> Worker:
    return Worker(start_pool_worker(env, log, sigint_ignored=sigint_ignored), log)


# --- the network, the store and the mail server -----------------------------------------


@dataclass
class Setup:
    server: PrefectServer
    smtp: RecordingSMTP
    env: dict[str, str]
    engine: Engine
    cycle_id: int

    def statuses(self) -> Counter[str]:
        with Session(self.engine) as s:
            rows = s.exec(
                select(Message.status, func.count()).group_by(Message.status)  # type: ignore[arg-type]
            ).all()
        return Counter({str(status): n for status, n in rows})

    def received(self) -> Counter[tuple[str, str]]:
        """(recipient, stage id) for every message the SMTP server took."""
        got: Counter[tuple[str, str]] = Counter()
        for _, to, data in self.smtp.recorder.messages:
            found = re.search(rb"Message-ID: <samverkan\.\d+\.(\d+)\.", data)
            assert found is not None
            got[(to[0].lower(), found.group(1).decode())] += 1
        return got

    def runs(self, deployment: str) -> list[dict[str, Any]]:
        wanted = self.server.deployments()[deployment]["id"]
        return [r for r in self.server.flow_runs() if r["deployment_id"] == wanted]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SAMVERKAN, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )


@contextmanager
def network(
    server: PrefectServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    delay: float,
    lease: float = 20,
    senders: int = 2,
) -> Iterator[Setup]:
    """2,000 participants, a cycle whose first two stages are due, samverkan deployed on the
    server; the SMTP server answers each message after ``delay`` seconds."""
    name = fresh_database("store_faults")
    try:
        with RecordingSMTP() as smtp:
            smtp.recorder.delay = delay
            env = {
                **server.env,
                "SAMVERKAN_DATABASE_URL": store_url(name),
                "SAMVERKAN_SECRET_KEY": "it-key-" + "x" * 32,
                "SAMVERKAN_SMTP_URL": smtp.url,
                "SAMVERKAN_SMTP_CONCURRENCY": str(CONNECTIONS),
                "SAMVERKAN_SENDER": "samverkan@coordination.example",
                "SAMVERKAN_MAIL_DIR": str(tmp_path / "mail"),
                # A message claimed by a sender that died is in doubt this long after its claim.
                "SAMVERKAN_SENDING_LEASE_SECONDS": f"{lease:g}",
            }
            sending = ["--senders", str(senders)]
            deployed = subprocess.run(
                [*SAMVERKAN, "deploy", "--pool", "it-pool", "--interval", "3600", *sending],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert deployed.returncode == 0, deployed.stderr
            for key, value in env.items():
                if key.startswith("SAMVERKAN_"):
                    monkeypatch.setenv(key, value)
            engine = open_store(store_url(name))
            from flows.people.participants import import_participants

            csv = tmp_path / "people.csv"
            rows = [
                f"Person {i},person{i}@example.org,Org {i % 9},professional,sv"
                for i in range(PEOPLE)
            ]
            csv.write_text("name,email,organisation,role,language\n" + "\n".join(rows) + "\n")
            import_participants(engine, csv)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            cycle_id = launch_learning_cycle(
                engine, Settings(), now - timedelta(minutes=1), now + timedelta(days=30)
            )
            try:
                yield Setup(server, smtp, env, engine, cycle_id)
            finally:
                engine.dispose()
    finally:
        drop_database(name)


def tick_and_wait(setup: Setup, timeout: float = 300) -> dict[str, Any]:
    """A tick run started now, once it has ended; with its report (the artifact)."""
    run_id = setup.server.run("samverkan-tick")
    run = wait_for(
        "the tick",
        lambda: (
            (r := setup.server.flow_run(run_id))["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
            and r
        ),
        timeout,
    )
    assert run["state_type"] == "COMPLETED", run["state"]
    artifacts = setup.server.post(
        "artifacts/filter",
        {
            "artifacts": {"key": {"any_": ["samverkan-tick"]}},
            "flow_runs": {"id": {"any_": [run_id]}},
        },
    )
    run["report"] = "\n".join(a["data"] for a in artifacts)
    return dict(run)


def running(setup: Setup, deployment: str) -> list[dict[str, Any]]:
    return [r for r in setup.runs(deployment) if r["state_type"] == "RUNNING"]


def delivering(setup: Setup, arrived: int) -> list[dict[str, Any]]:
    """Wait until deliver runs are going and ``arrived`` messages have reached the SMTP
    server; those runs."""

    def under_way() -> list[dict[str, Any]]:
        runs = running(setup, "samverkan-deliver")
        return runs if runs and len(setup.smtp.recorder.messages) >= arrived else []

    return list(wait_for("delivery under way", under_way, 600, every=0.2))


def settled(setup: Setup) -> bool:
    """Every run has ended (the tick's schedule may have lined up later ones)."""
    return all(r["state_type"] not in ("RUNNING", "PENDING") for r in setup.server.flow_runs())


# --- the tests ----------------------------------------------------------------------------


def test_a_worker_killed_mid_delivery_leaves_only_its_connections_in_doubt(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers: list[Worker] = []
    # One deliver run per stage: the worker that runs it is the one sending.
    with network(prefect_server, tmp_path, monkeypatch, delay=0.02, senders=1) as setup:
        try:
            workers = [start_worker(setup.env, tmp_path / f"worker{i}.log") for i in (1, 2)]
            setup.server.run("samverkan-tick")
            # Mid-delivery: the deliver runs are going and part of the mail has arrived.
            victim_run = delivering(setup, 300)[0]
            run_pid = int(str(victim_run["infrastructure_pid"]).rsplit(":", 1)[-1])
            victim = next(w for w in workers if run_pid in tree(w.proc.pid))
            doomed = tree(victim.proc.pid)
            # While messages are in flight (claimed, not yet recorded), not between two: the
            # worker is frozen (SIGSTOP) where a message is seen in flight, and thawed to try
            # again if the last one was recorded before it stopped.
            for _ in range(50):
                wait_for("a message in flight", lambda: setup.statuses()["sending"] > 0, 30, 0.005)
                signal_all(doomed, signal.SIGSTOP)
                if setup.statuses()["sending"] > 0:
                    break
                signal_all(doomed, signal.SIGCONT)
            for pid in doomed:  # the machine dies: every process of that worker at once
                os.kill(pid, signal.SIGKILL)
            killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
            victim.proc.wait()
            arrived_at_kill = len(setup.smtp.recorder.messages)
            assert arrived_at_kill < PEOPLE * DUE, "the worker was not killed mid-delivery"
            wait_for("the killed worker's processes gone", lambda: not any(map(_alive, doomed)), 30)

            with Session(setup.engine) as s:
                in_flight = s.exec(
                    select(func.count()).select_from(Message).where(Message.status == "sending")
                ).one()
            # At most one message per connection was in flight (not a claimed batch).
            assert in_flight <= CONNECTIONS

            # The next tick, once their lease is over, finds what the dead run had in flight
            # and says so.
            assert in_flight >= 1, "nothing was in flight: the kill came between two messages"
            time.sleep(max(0.0, killed_at + 20 + 2 - time.monotonic()))
            report = tick_and_wait(setup)["report"]
            noun = "message" if in_flight == 1 else "messages"
            assert f"{in_flight} {noun} in doubt: a sender stopped while" in report, report
            assert setup.statuses()["uncertain"] == in_flight
            shown = setup.cli("cycle", "show", str(setup.cycle_id))
            assert shown.returncode == 0 and "uncertain" in shown.stdout, shown.stdout

            # The ticks of the schedule (started here by hand) hand the rest to the other
            # worker, once the dead run's connection slots have freed themselves.
            def rest_delivered() -> bool:
                if (c := setup.statuses())["queued"] + c["retry"] == 0:
                    return True
                tick_and_wait(setup)
                return False

            wait_for("the rest delivered", rest_delivered, 600, every=5)

            # The killed runs are Crashed by the zombie automation, not left Running.
            killed = [
                r
                for r in setup.server.flow_runs()
                if r["infrastructure_pid"]
                and int(str(r["infrastructure_pid"]).rsplit(":", 1)[-1]) in doomed
            ]
            assert victim_run["id"] in {r["id"] for r in killed}
            wait_for(
                "the killed runs marked Crashed",
                lambda: all(
                    setup.server.flow_run(r["id"])["state_type"] == "CRASHED" for r in killed
                ),
                240,
                every=2,
            )
            crashed = setup.server.flow_run(victim_run["id"])
            assert "no heartbeat for 90 s" in crashed["state"]["message"]
            marked = datetime.fromisoformat(crashed["state"]["timestamp"])
            assert marked - killed_wall <= timedelta(minutes=2), (marked, killed_wall)
            wait_for("every run ended", lambda: settled(setup), 300)

            # The coordinator resends them on purpose; everyone has every message.
            resent = setup.cli("outbox", "resend", str(setup.cycle_id), "--uncertain")
            assert resent.returncode == 0, resent.stderr
            tick_and_wait(setup)
            wait_for(
                "the resent delivered",
                lambda: setup.statuses() == Counter({"sent": PEOPLE * DUE}) and settled(setup),
                300,
            )
            received = setup.received()
            assert len(received) == PEOPLE * DUE  # every person, every stage
            twice = [key for key, n in received.items() if n > 1]
            # Only a message that was in doubt can have arrived twice, and only once more.
            assert len(twice) <= in_flight and max(received.values()) <= 2
        finally:
            for worker in workers:
                end(worker)


def test_a_prefect_server_restart_mid_advance_loses_nothing_and_doubles_nothing(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers: list[Worker] = []
    with network(prefect_server, tmp_path, monkeypatch, delay=0.005) as setup:
        try:
            workers = [start_worker(setup.env, tmp_path / f"worker{i}.log") for i in (1, 2)]
            setup.server.run("samverkan-tick")
            wait_for("the advance run", lambda: running(setup, "samverkan-advance"), 300, 0.2)
            setup.server.stop()
            time.sleep(3)
            setup.server.start()
            wait_for(
                "everything delivered",
                lambda: setup.statuses() == Counter({"sent": PEOPLE * DUE}) and settled(setup),
                600,
                every=2,
            )
            received = setup.received()
            assert len(received) == PEOPLE * DUE and max(received.values()) == 1
            assert all(w.proc.poll() is None for w in workers), "a worker stopped"
            # And the next tick runs, on the restarted server, with nothing left to do.
            assert tick_and_wait(setup)["state_type"] == "COMPLETED"
        finally:
            for worker in workers:
                end(worker)
        ended = Counter(r["state_type"] for r in setup.server.flow_runs())
        assert set(ended) <= {"COMPLETED", "SCHEDULED"}, ended


def test_sigterm_to_a_pool_worker_finishes_the_run_in_flight_and_a_second_stops_it(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with network(prefect_server, tmp_path, monkeypatch, delay=0.01) as setup:
        # One SIGTERM, as `kill PID` sends it, to a worker started under nohup.
        first = start_worker(setup.env, tmp_path / "first.log", sigint_ignored=True)
        try:
            setup.server.run("samverkan-tick")
            in_flight = {r["id"] for r in delivering(setup, 200)}
            everything = tree(first.proc.pid)
            first.proc.send_signal(signal.SIGTERM)
            assert first.proc.wait(timeout=300) == 0, first.output()[-3000:]
            said = f"stopping: no more runs are taken; waiting for the {len(in_flight)} in flight"
            assert said in first.output()
            wait_for("nothing left running", lambda: not any(map(_alive, everything)), 30)
            ended = {setup.server.flow_run(i)["state_type"] for i in in_flight}
            assert ended == {"COMPLETED"}, first.output()[-3000:]
        finally:
            end(first)

        # Two signals: it stops at once, and the runs it stopped say so. New mail to send: a
        # second cycle for the same network.
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        launch_learning_cycle(
            setup.engine, Settings(), now - timedelta(minutes=1), now + timedelta(days=30)
        )
        second = start_worker(setup.env, tmp_path / "second.log", sigint_ignored=True)
        try:
            arrived = len(setup.smtp.recorder.messages)
            setup.server.run("samverkan-tick")
            in_flight = {r["id"] for r in delivering(setup, arrived + 200)}
            everything = tree(second.proc.pid)
            second.proc.send_signal(signal.SIGTERM)
            time.sleep(1)
            second.proc.send_signal(signal.SIGTERM)
            assert second.proc.wait(timeout=30) == 128 + signal.SIGTERM
            n = len(in_flight)
            assert f"stopping now: {n} {'run' if n == 1 else 'runs'} in flight ended" in (
                second.output()
            )
            wait_for("nothing left running", lambda: not any(map(_alive, everything)), 30)
            # Marked by the worker as it stopped, before it exited: not left for the zombie
            # automation two minutes later.
            states = [setup.server.flow_run(i)["state"] for i in in_flight]
            assert {s["type"] for s in states} == {"CRASHED"}, states
            assert {s["message"] for s in states} == {
                "stopped by a second signal to samverkan worker"
            }
        finally:
            end(second)

        # samverkan's own process killed (SIGKILL, no chance to pass anything on): the
        # Prefect worker it started does not stay behind, taking runs.
        third = start_worker(setup.env, tmp_path / "third.log")
        try:
            wait_for("the worker up", lambda: "started!" in third.output(), 120, 0.5)
            below = tree(third.proc.pid) - {third.proc.pid}
            assert below, "the Prefect worker is not running"
            third.proc.kill()
            third.proc.wait()
            wait_for("the Prefect worker gone", lambda: not any(map(_alive, below)), 30, 0.5)
        finally:
            end(third)
