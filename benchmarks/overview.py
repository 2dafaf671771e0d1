"""The workspace's overview over 200 cycles, one of them with 5,000 people (a follow-up sent
to each, half of them answered, invitations and reminders besides): the figures of every
cycle (flows/cycles/glance.py, a few grouped queries) and the whole page as the coordinator
gets it, on SQLite."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert
from sqlmodel import Session

from flows.cycles.glance import cycles_at_a_glance
from flows.settings import Settings
from store.db import open_store
from store.models import Cycle, Message, Organisation, Participant, Response, Stage

CYCLES = 200
PEOPLE = 5000
KEYS = [
    ("invitation", "email"),
    ("workshop", "meeting"),
    ("workshop-reminder", "email"),
    ("followup", "followup"),
    ("followup-reminder", "email"),
    ("reflection", "reflection"),
]


def populate(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as s:
        org = Organisation(name="Organisation")
        s.add(org)
        s.flush()
        s.execute(
            insert(Participant),
            [
                {
                    "name": f"P{i}",
                    "email": f"p{i}@x.example",
                    "email_key": f"p{i}@x.example",
                    "organisation_id": org.id,
                    "role": "professional",
                    "language": "sv",
                    "consent": True,
                    "erased": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(PEOPLE)
            ],
        )
        start = datetime(2027, 1, 1, tzinfo=UTC)
        for c in range(CYCLES):
            cycle = Cycle(
                name=f"Cycle {c}",
                template="learning-cycle",
                timezone="Europe/Stockholm",
                start_at=start + timedelta(days=c),
            )
            s.add(cycle)
            s.flush()
            stages = []
            for position, (key, kind) in enumerate(KEYS):
                stage = Stage(
                    cycle_id=cycle.id,
                    key=key,
                    kind=kind,
                    position=position * 10,
                    due_at=cycle.start_at + timedelta(days=position),
                    status="done" if position < 4 else "pending",
                    approval_required=key == "invitation",
                )
                s.add(stage)
                stages.append(stage)
            s.flush()
            people = PEOPLE if c == 0 else 10
            for stage in stages[:4]:
                s.execute(
                    insert(Message),
                    [
                        {
                            "cycle_id": cycle.id,
                            "stage_id": stage.id,
                            "participant_id": p + 1,
                            "to_email": f"p{p}@x.example",
                            "to_key": f"p{p}@x.example",
                            "to_name": f"P{p}",
                            "category": stage.kind,
                            "subject": "s",
                            "text": "t",
                            "html": "h",
                            "status": "failed" if p % 97 == 0 else "sent",
                            "created_at": now,
                        }
                        for p in range(people)
                    ],
                )
            s.execute(
                insert(Response),
                [
                    {
                        "cycle_id": cycle.id,
                        "stage_id": stages[3].id,
                        "participant_id": p + 1,
                        "question_id": "scale-now",
                        "scale_value": p % 11,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p in range(0, people, 2)
                ],
            )
        s.commit()


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    from flows.people.accounts import add_account
    from flows.web.app import create_app
    from tests.workspace import Client

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = open_store(url)
        populate(engine)
        add_account(engine, email="anna@x.example", role="coordinator", password="x" * 20)
        client = Client(create_app(Settings(database_url=url), engine))
        client.login("anna@x.example", "x" * 20)
        figures, pages = [], []
        for _ in range(10):
            t = time.perf_counter()
            glance = cycles_at_a_glance(engine)
            figures.append(time.perf_counter() - t)
            t = time.perf_counter()
            page = client.get("/workspace/")
            pages.append(time.perf_counter() - t)
            assert page.status_code == 200
        assert len(glance) == CYCLES and glance[0].asked == PEOPLE - len(range(0, PEOPLE, 97))
        print(
            f"overview of {CYCLES} cycles (one of {PEOPLE:,} people): figures "
            f"{statistics.median(figures) * 1000:.0f} ms, whole page "
            f"{statistics.median(pages) * 1000:.0f} ms (median of 10, SQLite)"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
