"""What sign-off costs when a stage runs: the workshop invitation (an email and a calendar
invite) drafted into the outbox for 5,000 participants, with and without sign-off by two
organisations, side by side in the same store.

With sign-off the stage renders its texts once more (one per language and role) and checks
every message against its signed text: the text filled in with the person's values, and the
calendar line read back from each invite. The ratio is of the medians of
SAMVERKAN_BENCH_ROUNDS rounds (3 by default), each round a fresh pair of cycles.

Target: with sign-off < 1.5x without.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, select

PEOPLE = 5000
ORGS = ("Försäkringskassan", "Arbetsförmedlingen")
NOW = datetime(2027, 1, 20, 9, tzinfo=UTC)


def _setup(folder: Path) -> tuple[object, object]:
    os.environ.update(
        {
            "SAMVERKAN_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "SAMVERKAN_MAIL_DIR": str(folder / "mail"),
            "SAMVERKAN_SENDER": "samverkan@bench.example",
        }
    )
    from flows.people.accounts import add_account
    from flows.settings import Settings
    from store.db import open_store
    from store.models import Organisation, Participant

    settings = Settings()
    engine = open_store(settings.database_url)
    with Session(engine) as s:
        orgs = [Organisation(name=n) for n in ORGS]
        s.add_all(orgs)
        s.flush()
        s.execute(
            insert(Participant),
            [
                {
                    "name": f"Person {i} Example",
                    "email": f"p{i}@bench.example",
                    "email_key": f"p{i}@bench.example",
                    "organisation_id": orgs[i % 2].id,
                    "role": ("professional", "manager", "service_user")[i % 3],
                    "language": "sv" if i % 2 else "en",
                    "consent": True,
                    "erased": False,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(PEOPLE)
            ],
        )
        s.commit()
    for i, org in enumerate(ORGS):
        add_account(
            engine,
            email=f"signer{i}@bench.example",
            role="signer",
            organisation=org,
            password="bench password 1234",
        )
    return settings, engine


def _ready_cycle(settings, engine, *, signed: bool) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A cycle whose invitation is done, so that its workshop is next; with sign-off on the
    workshop by both organisations, signed."""
    from flows.cycles.launch import launch_cycle
    from flows.cycles.signoff import sign
    from store.models import Stage

    cycle_id = launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="Vår 2027",
        start=NOW.isoformat(),
        variables={"workshop_at": "2027-02-10T09:00", "location": "Here"},
        signoff={"workshop": list(ORGS)} if signed else None,
    )
    with Session(engine) as s:
        stages = {st.key: st for st in s.exec(select(Stage).where(Stage.cycle_id == cycle_id))}
        stages["invitation"].status = "done"
        s.add(stages["invitation"])
        s.commit()
        workshop = int(stages["workshop"].id or 0)
    if signed:
        for i in range(len(ORGS)):
            sign(
                engine,
                settings,
                cycle_id=cycle_id,
                key="workshop",
                email=f"signer{i}@bench.example",
            )
    return cycle_id, workshop


def _run(settings, engine, cycle_id: int, stage_id: int) -> float:  # type: ignore[no-untyped-def]
    from flows.stages import execute
    from flows.templates import template_of
    from store.models import Cycle

    with Session(engine) as s:
        cycle = s.get(Cycle, cycle_id)
    t0 = time.perf_counter()
    outcome = execute(engine, settings, template_of(settings, cycle), stage_id=stage_id, now=NOW)
    elapsed = time.perf_counter() - t0
    assert outcome is not None and outcome.status == "done", outcome
    assert outcome.messages == PEOPLE, outcome
    return elapsed


def main() -> None:
    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "3"))
    print(f"sign-off at send time: the workshop stage for {PEOPLE:,} people (median of {rounds})")
    plain: list[float] = []
    signed: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        settings, engine = _setup(Path(folder))
        for _ in range(rounds):
            plain.append(_run(settings, engine, *_ready_cycle(settings, engine, signed=False)))
            signed.append(_run(settings, engine, *_ready_cycle(settings, engine, signed=True)))
    base, with_signoff = statistics.median(plain), statistics.median(signed)
    ratio = with_signoff / base
    print(f"  without sign-off (baseline)   {base:6.2f} s  x1.00")
    print(
        f"  with sign-off by two orgs     {with_signoff:6.2f} s  x{ratio:.2f}"
        + ("  ok" if ratio < 1.5 else "  SLOW")
    )


if __name__ == "__main__":
    main()
