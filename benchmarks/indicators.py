"""Indicators over 100,000 responses in 50 cycles: SQL (flows/reporting/indicators.py)
against the same figures computed by a Python loop over every response row, side by side, on
SQLite (and on PostgreSQL when SAMVERKAN_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import platform
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, insert, text
from sqlmodel import Session, select

from flows.reporting import indicators as ind
from store.db import open_store
from store.models import Cycle, Message, Organisation, Participant, Response, Stage

CYCLES = 50
PEOPLE = 2500
ANSWERS_PER_CYCLE = 2000  # 50 x 2,000 = 100,000 scale responses
ROLES = ["service_user", "professional", "manager", "politician", "facilitator"]


def populate(engine: Engine) -> None:
    rng = random.Random(7)
    with Session(engine) as s:
        orgs = [Organisation(name=f"Organisation {i}") for i in range(12)]
        s.add_all(orgs)
        s.flush()
        s.execute(
            insert(Participant),
            [
                {
                    "name": f"P{i}",
                    "email": f"p{i}@x.example",
                    "email_key": f"p{i}@x.example",
                    "organisation_id": orgs[i % len(orgs)].id,
                    "role": ROLES[i % len(ROLES)],
                    "language": "sv",
                    "consent": True,
                    "erased": False,
                    "created_at": datetime.now(UTC),
                    "updated_at": datetime.now(UTC),
                }
                for i in range(PEOPLE)
            ],
        )
        ids = [p for p in s.exec(select(Participant.id)).all()]
        start = datetime(2023, 1, 1, tzinfo=UTC)
        for c in range(CYCLES):
            cycle = Cycle(
                name=f"Cycle {c}",
                template="learning-cycle",
                timezone="Europe/Stockholm",
                start_at=start + timedelta(days=30 * c),
                status="completed",
            )
            s.add(cycle)
            s.flush()
            stage = Stage(
                cycle_id=cycle.id,
                key="followup",
                kind="followup",
                position=0,
                due_at=cycle.start_at,
                template="followup",
                status="done",
            )
            s.add(stage)
            s.flush()
            asked = rng.sample(ids, ANSWERS_PER_CYCLE + 300)
            now = datetime.now(UTC)
            s.execute(
                insert(Message),
                [
                    {
                        "cycle_id": cycle.id,
                        "stage_id": stage.id,
                        "participant_id": pid,
                        "to_email": f"p{pid}@x.example",
                        "to_key": f"p{pid}@x.example",
                        "to_name": "P",
                        "revision": 0,
                        "category": "followup",
                        "subject": "q",
                        "text": "q",
                        "html": "q",
                        "status": "sent",
                        "attempts": 1,
                        "created_at": now,
                    }
                    for pid in asked
                ],
            )
            s.execute(
                insert(Response),
                [
                    {
                        "cycle_id": cycle.id,
                        "stage_id": stage.id,
                        "participant_id": pid,
                        "question_id": "scale-now",
                        "scale_value": min(10, max(0, int(rng.gauss(6, 2)))),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for pid in asked[:ANSWERS_PER_CYCLE]
                ],
            )
        s.commit()


def python_loop(engine: Engine) -> dict[tuple[int, str, str], tuple[int, float, float]]:
    """The baseline: read every response and group it in Python."""
    with Session(engine) as s:
        rows = s.exec(
            select(Response.cycle_id, Organisation.name, Participant.role, Response.scale_value)
            .join(Participant, Participant.id == Response.participant_id)
            .join(Organisation, Organisation.id == Participant.organisation_id)
            .where(Response.scale_value.is_not(None))  # type: ignore[union-attr]
        ).all()
        asked_rows = s.exec(
            select(Message.cycle_id, Message.participant_id, Organisation.name, Participant.role)
            .join(Participant, Participant.id == Message.participant_id)
            .join(Organisation, Organisation.id == Participant.organisation_id)
        ).all()
    values: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for cycle, org, role, value in rows:
        for key in ((cycle, org, role), (cycle, org, "*"), (cycle, "*", role), (cycle, "*", "*")):
            values[key].append(value)
    asked: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    for cycle, pid, org, role in asked_rows:
        for key in ((cycle, org, role), (cycle, org, "*"), (cycle, "*", role), (cycle, "*", "*")):
            asked[key].add(pid)
    return {k: (len(v), statistics.fmean(v), statistics.median(v)) for k, v in values.items()}


def best_of(n: int, func, *args):  # type: ignore[no-untyped-def]
    """Best time of n runs, the result, and the peak memory Python allocated in one run."""
    times, result = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    func(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return min(times), result, peak


def run(url: str, label: str) -> None:
    engine = open_store(url)
    t0 = time.perf_counter()
    populate(engine)
    setup = time.perf_counter() - t0
    sql_time, sql, sql_peak = best_of(3, lambda: ind.compute(engine).rows())
    py_time, py, py_peak = best_of(3, python_loop, engine)
    # The two agree on every group's count, mean and median.
    figures = ind.compute(engine, min_group=1)
    for key, (n, mean, middle) in py.items():
        assert figures.scale[key][0] == n and abs(figures.scale[key][1] - mean) < 1e-9
        assert ind.median(figures.distribution[key]) == middle
    print(
        f"indicators on {label}: {CYCLES} cycles, {CYCLES * ANSWERS_PER_CYCLE:,} responses "
        f"(data made in {setup:.1f} s)"
    )
    print(
        f"  SQL (samverkan)        {sql_time * 1000:8.0f} ms  peak {sql_peak / 2**20:6.1f} MiB"
        f"  ({len(sql):,} indicator rows)"
    )
    print(f"  Python loop (baseline) {py_time * 1000:8.0f} ms  peak {py_peak / 2**20:6.1f} MiB")
    print(
        f"  ratio SQL / baseline   {sql_time / py_time:8.2f} in time, "
        f"{sql_peak / py_peak:.2f} in memory"
    )
    engine.dispose()


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite")
    pg = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL")
    if pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in pg else "?"
            run(f"{pg}{sep}options=-csearch_path%3D{schema}", "PostgreSQL")
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
