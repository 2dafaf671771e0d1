"""How fast the workspace's pages answer on a big store, against a static file served by the
same app in the same run.

The store holds 200 cycles: 199 of the example network (13 people each) and one of 5,000
people, each with its invitation drafted (so every cycle has messages waiting for approval).
A signed-in coordinator then asks, through the app in this process over httpx's ASGI
transport (no network, no server threads: what is measured is the app's own work):

- the static stylesheet (``/workspace/static/workspace.css``): the baseline, what any request
  through the app costs (routing, the middleware, the session check does not run);
- the overview (``/workspace/``), every cycle with its counts;
- the 5,000-person cycle's page (``/workspace/cycles/N``);
- its outbox (``/workspace/cycles/N/outbox``), 200 messages a page;
- its invitation's drafts (``/workspace/cycles/N/stages/invitation/drafts``), one example per
  language and role with everyone listed.

Each page is asked SAMVERKAN_BENCH_ROUNDS times (default 15) after one warm-up; the median is
printed with its ratio to the baseline. Target: each page's median under 150 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.participants_import import make_csv

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "process_templates" / "learning-cycle" / "example" / "participants.csv"
SMALL_CYCLES = 199
BIG = 5_000
TARGET_MS = 150
PASSWORD = "benchmark passphrase"


def _setup(folder: Path) -> tuple[object, int]:
    """A store with the cycles, and the app over it; the big cycle's id."""
    os.environ["SAMVERKAN_DATABASE_URL"] = f"sqlite:///{folder / 'samverkan.db'}"
    os.environ["SAMVERKAN_MAIL_DIR"] = str(folder / "mail")
    from flows.cycles.launch import launch_cycle
    from flows.cycles.tick import tick_direct
    from flows.people.accounts import add_account
    from flows.people.participants import import_participants
    from flows.settings import load_settings
    from flows.web.app import create_app
    from store.db import open_store

    settings = load_settings()
    engine = open_store(settings.database_url)
    import_participants(engine, EXAMPLE)
    variables = {"workshop_at": "2027-02-10T09:00", "location": "Stadshuset"}
    t0 = time.perf_counter()
    for i in range(SMALL_CYCLES):
        launch_cycle(
            engine,
            settings,
            template="learning-cycle",
            name=f"Cycle {i + 1}",
            start="2027-01-20T09:00",
            variables=variables,
        )
    # The big cycle's people join after the small cycles were launched (a cycle's members
    # are fixed at launch), so the small ones stay the example network's 13.
    people = folder / "people.csv"
    make_csv(people, BIG)
    import_participants(engine, people)
    big = launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="The whole region",
        start="2027-01-20T09:00",
        variables=variables,
    )
    tick_direct(settings, engine, datetime(2027, 1, 20, 8, 0, tzinfo=UTC))
    print(f"  set up {SMALL_CYCLES + 1} cycles in {time.perf_counter() - t0:.0f} s (not timed)")
    add_account(engine, email="bench@coordination.example", role="coordinator", password=PASSWORD)
    return create_app(settings, engine), big


async def _measure(app: object, big: int, rounds: int) -> dict[str, list[float]]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        page = await c.get("/workspace/login")
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        done = await c.post(
            "/workspace/login",
            data={"email": "bench@coordination.example", "password": PASSWORD, "csrf": token},
        )
        assert done.status_code == 303, done.text
        paths = {
            "static stylesheet (baseline)": "/workspace/static/workspace.css",
            "overview, 200 cycles": "/workspace/",
            f"cycle page, {BIG:,} people": f"/workspace/cycles/{big}",
            f"outbox, {BIG:,} people": f"/workspace/cycles/{big}/outbox",
            f"drafts, {BIG:,} people": f"/workspace/cycles/{big}/stages/invitation/drafts",
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for name, path in paths.items():
            warm = await c.get(path)
            assert warm.status_code == 200, (path, warm.status_code)
            for _ in range(rounds):
                t0 = time.perf_counter()
                got = await c.get(path)
                times[name].append(time.perf_counter() - t0)
                assert got.status_code == 200
        return times


def main() -> None:
    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "15"))
    print(f"workspace pages (median of {rounds}; target < {TARGET_MS} ms each)")
    with tempfile.TemporaryDirectory() as folder:
        app, big = _setup(Path(folder))
        times = asyncio.run(_measure(app, big, rounds))
    baseline = statistics.median(next(iter(times.values())))
    for name, found in times.items():
        median = statistics.median(found)
        ratio = median / baseline if baseline else float("nan")
        mark = "" if "baseline" in name else ("  ok" if median * 1000 < TARGET_MS else "  SLOW")
        print(f"  {name:32} {median * 1000:7.1f} ms  x{ratio:6.1f}{mark}")


if __name__ == "__main__":
    main()
