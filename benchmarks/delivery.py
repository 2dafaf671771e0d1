"""Delivery figures of issue 5, measured side by side against a local aiosmtpd sink that runs in
its own process (so it does not share our interpreter):

1. a workshop invitation stage (render, calendar part, outbox, SMTP) to 5,000 participants;
2. the raw ceiling: aiosmtplib sending 5,000 pre-serialised messages of the same size over 16
   reused connections;
3. the naive way: a Prefect flow with one task per message (500 messages);
4. peak memory (tracemalloc) of the stage for 1,000 and 20,000 participants;
5. tick time with 1,000 running cycles none of which is due, against one cycle.

(1), (2) and (3) run in turn for five rounds (SAMVERKAN_BENCH_ROUNDS) and the ratios use
their medians: this machine is shared, and its speed drifts by half within minutes.

Targets: (1)/(2) >= 0.25, (1)/(3) >= 10, (4) at 20,000 < 1.5x at 1,000, (5) < 2x.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from sqlalchemy import insert
from sqlmodel import Session, select

CONNECTIONS = 16

SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"""


def start_sink() -> tuple[subprocess.Popen[str], int]:
    from tests.smtpd import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


def setup(folder: Path, people: int, port: int) -> tuple[object, object, int]:
    """A store with ``people`` participants and a launched learning cycle whose invitation
    has already gone out (so the workshop invitation stage is next)."""
    os.environ.update(
        {
            "SAMVERKAN_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "SAMVERKAN_MAIL_DIR": str(folder / "mail"),
            "SAMVERKAN_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "SAMVERKAN_SENDER": "samverkan@bench.example",
            # The same number of connections as the raw ceiling (2) uses.
            "SAMVERKAN_SMTP_CONCURRENCY": str(CONNECTIONS),
        }
    )
    from flows.cycles.launch import launch_cycle
    from flows.settings import Settings
    from store.db import open_store
    from store.models import Organisation, Participant, Stage

    settings = Settings()
    engine = open_store(settings.database_url)
    now = datetime.now(UTC)
    with Session(engine) as s:
        org = Organisation(name="Org")
        s.add(org)
        s.flush()
        s.execute(
            insert(Participant),
            [
                {
                    "name": f"Person {i} Example",
                    "email": f"p{i}@bench.example",
                    "email_key": f"p{i}@bench.example",
                    "organisation_id": org.id,
                    "role": "professional",
                    "language": "sv" if i % 2 else "en",
                    "consent": True,
                    "erased": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(people)
            ],
        )
        s.commit()
    start = datetime(2027, 1, 20, 9, tzinfo=UTC)
    launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="Vår 2027",
        start=start.isoformat(),
        variables={"workshop_at": "2027-02-10T09:00", "location": "Here"},
    )
    with Session(engine) as s:
        invitation = s.exec(select(Stage).where(Stage.key == "invitation")).one()
        invitation.status = "done"
        s.add(invitation)
        s.commit()
        workshop = s.exec(select(Stage).where(Stage.key == "workshop")).one()
    return settings, engine, workshop.id  # type: ignore[return-value]


def run_stage(settings, engine, stage_id: int) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """The workshop invitation stage: draft into the outbox, then deliver over SMTP.

    Returns the number sent and the seconds spent drafting and delivering."""
    from flows.cycles.delivery import deliver
    from flows.stages import execute
    from flows.templates import template_of
    from store.models import Cycle

    with Session(engine) as s:
        cycle = s.exec(select(Cycle)).one()
    now = datetime(2027, 1, 20, 9, tzinfo=UTC)
    t0 = time.perf_counter()
    execute(engine, settings, template_of(settings, cycle), stage_id=stage_id, now=now)
    t1 = time.perf_counter()
    sent = deliver(settings, engine, now).sent
    return sent, t1 - t0, time.perf_counter() - t1


def stage_round(port: int, people: int = 5000) -> tuple[float, float, float, bytes]:
    """One run of (1): msg/s end to end, ms per message drafting and delivering, and one of
    the messages as sent (for (2) and (3))."""
    from flows.cycles.delivery import sender_info
    from messaging.outbox import message_bytes
    from store.models import Message

    with tempfile.TemporaryDirectory() as tmp:
        settings, engine, stage_id = setup(Path(tmp), people, port)
        sent, drafting, delivering = run_stage(settings, engine, stage_id)
        assert sent == people, (sent, people)
        with Session(engine) as s:
            msg = s.exec(select(Message).where(Message.category == "meeting")).first()
            assert msg is not None
            data = message_bytes(msg, sender_info(settings), "<m@bench.example>")
        engine.dispose()  # type: ignore[attr-defined]
    return sent / (drafting + delivering), drafting / sent * 1e3, delivering / sent * 1e3, data


def raw_ceiling(port: int, data: bytes, n: int, connections: int = 16) -> float:
    """aiosmtplib alone, sending ready-made bytes over ``connections`` reused connections."""

    async def go() -> None:
        queue = list(range(n))

        async def lane() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
            await client.connect()
            while queue:
                i = queue.pop()
                await client.sendmail("s@bench.example", [f"p{i}@bench.example"], data)
            await client.quit()

        await asyncio.gather(*(lane() for _ in range(connections)))

    t0 = time.perf_counter()
    asyncio.run(go())
    return n / (time.perf_counter() - t0)


def naive_prefect(port: int, data: bytes, n: int) -> float:
    """One Prefect task per message, each with its own connection: the way to avoid."""
    from prefect import flow, task

    @task
    def send_one(i: int) -> None:
        async def go() -> None:
            await aiosmtplib.send(
                data,
                sender="s@bench.example",
                recipients=[f"p{i}@bench.example"],
                hostname="127.0.0.1",
                port=port,
            )

        asyncio.run(go())

    @flow
    def send_all(count: int) -> None:
        for i in range(count):
            send_one(i)

    send_all(1)  # start the embedded server outside the timing
    t0 = time.perf_counter()
    send_all(n)
    return n / (time.perf_counter() - t0)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _measure_stage(people: int, port: int) -> None:
    """In a child process: how far resident memory rises while the stage runs."""
    import gc

    with tempfile.TemporaryDirectory() as tmp:
        settings, engine, stage_id = setup(Path(tmp), people, port)
        gc.collect()
        before = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
        sent, _, _ = run_stage(settings, engine, stage_id)
        assert sent == people, (sent, people)
        print(_status("VmHWM") - before)


def stage_memory(people: int, port: int) -> int:
    """Peak extra resident memory of the stage, measured in a fresh process."""
    code = f"from benchmarks.delivery import _measure_stage; _measure_stage({people}, {port})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return int(out.stdout.strip().splitlines()[-1])


def tick_time(cycles: int, port: int) -> float:
    """Mean time of a tick (a real Prefect flow) over ``cycles`` running cycles, none due."""
    with tempfile.TemporaryDirectory() as tmp:
        _, engine, _ = setup(Path(tmp), 5, port)
        from store.models import Cycle, Stage

        with Session(engine) as s:
            template = s.exec(select(Cycle)).one()
            start = template.start_at
            rows = [
                {
                    "name": f"C{i}",
                    "template": template.template,
                    "timezone": template.timezone,
                    "status": "running",
                    "start_at": start + timedelta(days=400),
                    "variables": {},
                    "steering": [],
                    "plan_version": 1,
                    "created_at": datetime.now(UTC),
                }
                for i in range(cycles - 1)
            ]
            if rows:
                s.execute(insert(Cycle), rows)
            ids = [c for c in s.exec(select(Cycle.id)).all()]
            if len(ids) > 1:
                s.execute(
                    insert(Stage),
                    [
                        {
                            "cycle_id": cid,
                            "key": "later",
                            "kind": "email",
                            "position": 0,
                            "due_at": start + timedelta(days=400),
                            "template": "invitation",
                            "audience": "all",
                            "approval_required": False,
                            "config": {},
                            "status": "pending",
                            "offset_seconds": 0,
                        }
                        for cid in ids[1:]
                    ],
                )
            s.commit()
        from flows.orchestration.flows import tick

        quiet = datetime(2027, 1, 1, tzinfo=UTC)  # before anything is due
        tick(quiet)  # warm up
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            tick(quiet)
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]


def main() -> None:
    import platform

    from flows.orchestration.flows import quiet_prefect

    def say(text: str) -> None:
        print(text, flush=True)

    say(
        f"delivery: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "5"))
    say(f"  (1), (2) and (3) run in turn, {rounds} rounds; the ratios use their medians")
    sink, port = start_sink()
    e2es, ceilings, naives = [], [], []
    try:
        with quiet_prefect():
            for number in range(1, rounds + 1):
                e2e, drafting, delivering, data = stage_round(port)
                ceiling = raw_ceiling(port, data, 5000, CONNECTIONS)
                naive = naive_prefect(port, data, 500)
                say(
                    f"  round {number}: (1) {e2e:5.0f} msg/s (drafting {drafting:.2f} ms, "
                    f"delivering {delivering:.2f} ms a message), (2) {ceiling:5.0f} msg/s, "
                    f"(3) {naive:4.0f} msg/s"
                )
                e2es.append(e2e)
                ceilings.append(ceiling)
                naives.append(naive)
        e2e, ceiling, naive = (statistics.median(v) for v in (e2es, ceilings, naives))
        say(f"  message size {len(data):,} bytes")
        say(f"  (1) workshop invitation stage, 5,000 participants  {e2e:8.0f} msg/s  (16 conn.)")
        say(f"  (2) raw aiosmtplib ceiling, 16 connections          {ceiling:8.0f} msg/s")
        say(f"  (3) one Prefect task per message (500)              {naive:8.0f} msg/s")
        with quiet_prefect():
            one = tick_time(1, port)
            many = tick_time(1000, port)
        say(
            f"  (5) tick, nothing due: 1 cycle {one * 1000:6.0f} ms, "
            f"1,000 cycles {many * 1000:6.0f} ms"
        )
        small = stage_memory(1000, port)
        large = stage_memory(20000, port)
        say(
            f"  (4) peak extra memory of the stage: 1,000 {small / 2**20:6.1f} MiB, "
            f"20,000 {large / 2**20:6.1f} MiB"
        )
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)
    checks = [
        ("(1)/(2) >= 0.25", e2e / ceiling, e2e / ceiling >= 0.25),
        ("(1)/(3) >= 10", e2e / naive, e2e / naive >= 10),
        ("(4) 20,000 / 1,000 < 1.5", large / small, large / small < 1.5),
        ("(5) 1,000 / 1 < 2", many / one, many / one < 2),
    ]
    for name, ratio, ok in checks:
        say(f"  {name:<26} {ratio:8.2f}  {'met' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
