"""Distributed mode: a real Prefect server on PostgreSQL, two Prefect workers on one process
work pool, a cycle of 2,000 participants, a real SMTP server; a stage that fails there, as
Prefect shows it; and the embedded worker loop.

The integration test needs SAMVERKAN_TEST_POSTGRES_URL (``.ci/run`` sets it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select

from flows.settings import Settings
from store.db import open_store
from store.models import Message, Stage
from tests.conftest import EXAMPLE_CSV, launch_learning_cycle
from tests.flows.test_stage_failure import templates_failing_for_lars
from tests.prefect_server import (
    ROOT,
    SAMVERKAN,
    PrefectServer,
    drop_database,
    fresh_database,
    start_pool_worker,
    stop,
)
from tests.prefect_server import store_url as store_database
from tests.smtpd import RecordingSMTP, free_port

pytestmark = pytest.mark.subprocess

PEOPLE = 2000


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMVERKAN, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_deploy_without_a_prefect_server_says_what_is_missing() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    for args in (["deploy", "--pool", "p"], ["worker", "--pool", "p"]):
        done = run_cli(*args, env=env)
        assert done.returncode == 2
        assert done.stderr.startswith("error: this needs a Prefect server: set PREFECT_API_URL")
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_deploy_and_worker_report_an_unreachable_server_in_one_line() -> None:
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    for args in (["deploy", "--pool", "p"], ["worker", "--pool", "p"]):
        done = run_cli(*args, env=env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: cannot reach the Prefect server at http://127.0.0.1:")
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_embedded_worker_ticks_until_stopped(tmp_path: Path) -> None:
    """`samverkan worker` without a pool: Prefect starts once, a tick runs every --every
    seconds, and Ctrl-C (SIGINT) stops it cleanly after the current tick."""
    env = {
        **os.environ,
        "SAMVERKAN_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
        "SAMVERKAN_MAIL_DIR": str(tmp_path / "mail"),
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [*SAMVERKAN, "worker", "--every", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen: list[str] = []
        assert proc.stdout is not None
        while time.monotonic() < deadline and sum("tick at" in s for s in seen) < 2:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
        assert sum("tick at" in s for s in seen) >= 2, seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping after this tick" in out
    assert "Traceback" not in err


# --- the integration test: prefect server + two prefect workers --------------------------


def test_a_cycle_of_2000_runs_on_two_prefect_workers_exactly_once(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, env = prefect_server.api, prefect_server.env
    store_name = fresh_database("store_it")
    store_url = store_database(store_name)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with RecordingSMTP() as smtp:
            env = {
                **env,
                "SAMVERKAN_DATABASE_URL": store_url,
                "SAMVERKAN_SECRET_KEY": "it-key-" + "x" * 32,
                "SAMVERKAN_SMTP_URL": smtp.url,
                "SAMVERKAN_SMTP_CONCURRENCY": "4",
                "SAMVERKAN_SENDER": "samverkan@coordination.example",
                "SAMVERKAN_MAIL_DIR": str(tmp_path / "mail"),
            }
            deployed = run_cli(
                "deploy", "--pool", "it-pool", "--interval", "3600", "--senders", "2", env=env
            )
            assert deployed.returncode == 0, deployed.stderr
            assert "work pool it-pool (created, type process)" in deployed.stdout
            assert (
                "limit samverkan-smtp-connections: 4 SMTP connections at once, "
                "across all deliver runs"
            ) in deployed.stdout
            assert (
                "automation 'samverkan: crash zombie flow runs': a run without a heartbeat "
                "for 90 s is marked Crashed"
            ) in deployed.stdout
            again = run_cli("deploy", "--pool", "it-pool", "--interval", "3600", env=env)
            assert again.returncode == 0, again.stderr  # deploying again updates, never doubles
            automations = {a["name"]: a for a in prefect_server.post("automations/filter", {})}
            assert set(automations) == {
                "samverkan: crash zombie flow runs",
                "samverkan: crash flow runs that never started",
            }
            ids = {d["id"] for d in prefect_server.post("deployments/filter", {})}
            for automation in automations.values():
                trigger = automation["trigger"]
                assert trigger["posture"] == "Proactive"
                assert automation["actions"][0]["state"] == "CRASHED"
                # Only samverkan's runs: another team's flow on the server is not judged.
                related = trigger["match_related"]
                related = related[0] if isinstance(related, list) else related
                assert {
                    i.removeprefix("prefect.deployment.") for i in related["prefect.resource.id"]
                } == ids
            assert automations["samverkan: crash zombie flow runs"]["trigger"]["within"] == 90.0
            found = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
            by_name = {d["name"]: d for d in found}
            assert set(by_name) == {"samverkan-tick", "samverkan-advance", "samverkan-deliver"}
            tick_schedules = by_name["samverkan-tick"]["schedules"]
            assert [s["schedule"]["interval"] for s in tick_schedules] == [3600.0]

            # 2,000 participants and a cycle with three stages due now: the invitation
            # (approved in advance), the workshop's calendar invite and its reminder.
            for name, value in env.items():
                if name.startswith("SAMVERKAN_"):
                    monkeypatch.setenv(name, value)  # for the in-process store calls below
            csv = tmp_path / "people.csv"
            rows = [
                f"Person {i},person{i}@example.org,Org {i % 9},professional,{('en', 'sv')[i % 2]}"
                for i in range(PEOPLE)
            ]
            csv.write_text("name,email,organisation,role,language\n" + "\n".join(rows) + "\n")
            settings = Settings()
            engine = open_store(store_url)
            from flows.people.participants import import_participants

            import_participants(engine, csv)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            cycle_id = launch_learning_cycle(
                engine, settings, now - timedelta(days=3), now + timedelta(days=1)
            )

            logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
            workers += [start_pool_worker(env, log) for log in logs]
            tick_id = by_name["samverkan-tick"]["id"]
            started = httpx.post(f"{api}/deployments/{tick_id}/create_flow_run", json={})
            assert started.status_code == 201, started.text

            due = ("invitation", "workshop", "workshop-reminder")
            deadline = time.monotonic() + 900
            while True:
                with Session(engine) as s:
                    done = s.exec(
                        select(func.count())
                        .select_from(Stage)
                        .where(Stage.cycle_id == cycle_id, Stage.status == "done")
                    ).one()
                    waiting = s.exec(
                        select(func.count())
                        .select_from(Message)
                        .where(Message.status.in_(["queued", "sending", "retry"]))  # type: ignore[attr-defined]
                    ).one()
                runs = prefect_server.flow_runs()
                crashed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
                assert not crashed, [log.read_text()[-3000:] for log in logs]
                # Every run ended too (not the ticks the schedule lined up for later): a
                # deliver run that found every connection taken ends after waiting a while.
                ended = all(r["state_type"] in ("COMPLETED", "SCHEDULED") for r in runs)
                if done == len(due) and waiting == 0 and ended:
                    break
                assert time.monotonic() < deadline, (done, waiting, [r["state_type"] for r in runs])
                time.sleep(1)
            received = list(smtp.recorder.messages)

        # Every participant got exactly one message per stage, and the outbox agrees.
        with Session(engine) as s:
            outbox = s.exec(
                select(Message.id, Message.status, Stage.key).join(
                    Stage, col(Stage.id) == Message.stage_id
                )
            ).all()
        stage_of = {mid: key for mid, _, key in outbox}
        assert Counter(str(status) for _, status, _ in outbox) == {"sent": PEOPLE * len(due)}
        per_person: dict[str, Counter[str]] = defaultdict(Counter)
        for _, to, data in received:
            found_id = re.search(rb"Message-ID: <samverkan\.\d+\.(\d+)\.\d+\.[0-9a-f]+@", data)
            assert found_id is not None
            per_person[to[0].lower()][stage_of[int(found_id.group(1))]] += 1
        assert len(per_person) == PEOPLE
        assert all(c == Counter({k: 1 for k in due}) for c in per_person.values())
        names = {d["id"]: d["name"] for d in found}
        completed = Counter(
            names.get(r["deployment_id"])
            for r in prefect_server.flow_runs()
            if r["state_type"] == "COMPLETED"
        )
        assert completed["samverkan-tick"] >= 1 and completed["samverkan-advance"] >= 1
        # Started by the advance run side by side; they share the connection cap, so the
        # second may have found every connection taken and left the outbox to the first.
        assert completed["samverkan-deliver"] >= 2
        # SAMVERKAN_SMTP_CONCURRENCY holds for both deliver runs together.
        assert 1 <= smtp.recorder.most_open <= 4
        engine.dispose()
    finally:
        for worker in workers:
            stop(worker)
        drop_database(store_name)


def test_a_stage_that_fails_on_the_pool_is_a_failed_task_run_and_the_caps_hold(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Prefect server shows of a tick on the work pool: the runs named after their
    cycle, the stage whose template fails as a Failed task run with the reason, its advance
    run Completed (the plan went on), the tick's report as an artifact; and the two deliver
    runs it starts together under one connection cap and one rate, counted at the relay."""
    api, env = prefect_server.api, prefect_server.env
    store_name = fresh_database("store_it")
    store_url = store_database(store_name)
    root = templates_failing_for_lars(tmp_path)
    worker: subprocess.Popen[bytes] | None = None
    try:
        with RecordingSMTP() as smtp:
            env = {
                **env,
                "SAMVERKAN_DATABASE_URL": store_url,
                "SAMVERKAN_SECRET_KEY": "it-key-" + "x" * 32,
                "SAMVERKAN_SMTP_URL": smtp.url,
                "SAMVERKAN_SMTP_CONCURRENCY": "2",
                "SAMVERKAN_SMTP_RATE": "5",
                "SAMVERKAN_SENDER": "samverkan@coordination.example",
                "SAMVERKAN_MAIL_DIR": str(tmp_path / "mail"),
                "SAMVERKAN_TEMPLATES_DIR": str(root),
            }
            deployed = run_cli(
                "deploy", "--pool", "it-pool", "--interval", "3600", "--senders", "2", env=env
            )
            assert deployed.returncode == 0, deployed.stderr
            assert deployed.stdout.splitlines()[-5:-3] == [
                "limit samverkan-smtp-connections: 2 SMTP connections at once, "
                "across all deliver runs",
                "limit samverkan-smtp-rate: 5 messages a second, across all deliver runs",
            ]
            limits = prefect_server.post("v2/concurrency_limits/filter", {})
            assert {(c["name"], c["limit"], c["slot_decay_per_second"]) for c in limits} == {
                ("samverkan-smtp-connections", 2, 0.0),
                ("samverkan-smtp-rate", 1, 5.0),
            }
            by_name = {d["name"]: d for d in prefect_server.post("deployments/filter", {})}

            for name, value in env.items():
                if name.startswith("SAMVERKAN_"):
                    monkeypatch.setenv(name, value)  # for the in-process store calls below
            settings = Settings()
            engine = open_store(store_url)
            from flows.people.participants import import_participants

            import_participants(engine, EXAMPLE_CSV)  # 13, Lars Ek among them
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            cycle_id = launch_learning_cycle(
                engine, settings, now - timedelta(days=3), now + timedelta(days=1)
            )
            worker = start_pool_worker(env, tmp_path / "worker.log")
            tick_id = by_name["samverkan-tick"]["id"]
            started = httpx.post(f"{api}/deployments/{tick_id}/create_flow_run", json={})
            assert started.status_code == 201, started.text

            deadline = time.monotonic() + 600
            while True:
                with Session(engine) as s:
                    stages = dict(
                        s.exec(
                            select(Stage.key, Stage.status).where(Stage.cycle_id == cycle_id)
                        ).all()
                    )
                    waiting = s.exec(
                        select(func.count())
                        .select_from(Message)
                        .where(col(Message.status).in_(["queued", "sending", "retry"]))
                    ).one()
                # Not the ticks the deployment's schedule has lined up for later.
                runs = [r for r in prefect_server.flow_runs() if r["state_type"] != "SCHEDULED"]
                finished = all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs)
                if stages["workshop"] == "failed" and not waiting and len(runs) >= 4 and finished:
                    break
                assert time.monotonic() < deadline, (
                    stages,
                    waiting,
                    [(r["name"], r["state_type"]) for r in runs],
                )
                time.sleep(1)
            most_open, arrived = smtp.recorder.most_open, sorted(smtp.recorder.arrived)

        names = {r["name"]: r for r in runs}
        assert {r["state_type"] for r in runs} == {"COMPLETED"}
        deliver_runs = [r for r in runs if r["name"] == f"deliver-cycle-{cycle_id}"]
        assert len(deliver_runs) == 2  # the advance run's, side by side
        advance = names[f"advance-cycle-{cycle_id}"]

        def read_task_runs() -> dict[str, dict[str, Any]]:
            found = prefect_server.post(
                "task_runs/filter", {"flow_runs": {"id": {"any_": [advance["id"]]}}}
            )
            return {t["name"]: t for t in found}

        deadline = time.monotonic() + 60  # task runs are recorded from events, a moment later
        while len(tasks := read_task_runs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert {n: t["state_type"] for n, t in tasks.items()} == {
            "email:invitation": "COMPLETED",
            "meeting:workshop": "FAILED",
            "email:workshop-reminder": "COMPLETED",
        }
        message = tasks["meeting:workshop"]["state"]["message"]
        assert "workshop.sv.md.j2" in message and "by zero" in message

        ticks = [r["id"] for r in runs if r["deployment_id"] == tick_id]
        published = prefect_server.post(
            "artifacts/filter",
            {
                "artifacts": {"key": {"any_": ["samverkan-tick"]}},
                "flow_runs": {"id": {"any_": ticks}},
            },
        )
        assert any(f"cycle {cycle_id}: handed to the work pool" in a["data"] for a in published)

        # Both deliver runs together: two connections at most, five messages a second.
        with Session(engine) as s:
            sent = s.exec(
                select(func.count()).select_from(Message).where(Message.status == "sent")
            ).one()
        assert len(arrived) == sent >= 13
        assert 1 <= most_open <= 2
        spans = [arrived[i + 5] - arrived[i] for i in range(len(arrived) - 5)]
        assert min(spans) >= 1.0, spans
        engine.dispose()
    finally:
        if worker is not None:
            stop(worker)
        drop_database(store_name)


def test_the_embedded_loop_reports_a_failed_tick_and_goes_on() -> None:
    from flows.orchestration.deploy import run_embedded

    said: list[str] = []
    calls: list[datetime] = []

    def tick(now: datetime) -> list[str]:
        calls.append(now)
        if len(calls) == 1:
            raise OSError("could not connect to server: Connection refused")
        return [f"tick at {now.isoformat()}"]

    assert run_embedded(every=0.05, say=said.append, tick=tick, rounds=3) == 3
    assert said[0] == (
        "tick failed: OSError: could not connect to server: Connection refused; "
        "trying again in 0.05 s"
    )
    assert len(said) == 3 and all(line.startswith("tick at ") for line in said[1:])
