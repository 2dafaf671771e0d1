"""How long a coordinator waits: each command timed as a whole process, as they type it.

A store with the example network and a few launched learning cycles is set up first (not
timed). Each command then runs SAMVERKAN_BENCH_ROUNDS times (default 7) as
``python -m flows.cli …`` in a fresh process; the median is printed beside its target and
beside two baselines measured in the same run: ``python -c 'import flows'`` (the interpreter's
own start, which no command can go below) and ``python -c 'import sqlmodel'`` (what every
command that opens the store must load: SQLAlchemy and SQLModel).

Targets: commands that run no flow < 0.3 s; ``tick`` with nothing due < 1 s; ``tick`` that
sends a stage (13 invitations with calendar parts, to a Maildir) < 2 s, that is without
starting Prefect's embedded server, which alone took 5-12 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "process_templates" / "learning-cycle" / "example" / "participants.csv"
CYCLES = 8  # one fresh cycle per timed ``approve``
START = "2027-01-20T09:00"


def _launch(start: str) -> list[str]:
    return [
        "cycle",
        "launch",
        "learning-cycle",
        "--name",
        "Vår 2027",
        "--start",
        start,
        "--var",
        "workshop_at=2027-02-10T09:00",
        "--var",
        "location=Stadshuset",
    ]


def _run(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[2:])} failed: {done.stderr.strip()[-300:]}")
    return took


def _median(rounds: int, once: Callable[[int], float]) -> float:
    return statistics.median(once(i) for i in range(rounds))


def main() -> None:
    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "7"))
    cli = [sys.executable, "-m", "flows.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAMVERKAN_", "PREFECT_"))}
        env |= {
            "SAMVERKAN_DATABASE_URL": f"sqlite:///{home / 'samverkan.db'}",
            "SAMVERKAN_MAIL_DIR": str(home / "mail"),
            "SAMVERKAN_SECRET_KEY": "latency-benchmark-key-0123456789abcdef",
            "PYTHONPATH": str(ROOT),
        }
        _run([*cli, "participants", "import", str(EXAMPLE)], env)
        for _ in range(CYCLES):
            _run([*cli, *_launch(START)], env)
        # A copy of the store for each timed tick that sends: the first cycle's invitation,
        # approved in advance, is due at its start.
        _run([*cli, "approve", "1", "invitation"], env)
        due = home / "due.db"
        shutil.copy(home / "samverkan.db", due)

        def sending_tick(i: int) -> float:
            db = home / f"tick-{i}.db"
            shutil.copy(due, db)
            fresh = env | {"SAMVERKAN_DATABASE_URL": f"sqlite:///{db}"}
            return _run([*cli, "tick", "--now", START], fresh)

        baseline = _median(rounds, lambda _: _run([sys.executable, "-c", "import flows"], env))
        orm = _median(rounds, lambda _: _run([sys.executable, "-c", "import sqlmodel"], env))
        rows: list[tuple[str, float, float]] = []

        def timed(label: str, args: list[str], target: float) -> None:
            rows.append((label, _median(rounds, lambda _: _run([*cli, *args], env)), target))

        timed("samverkan cycle show 1", ["cycle", "show", "1"], 0.3)
        timed("samverkan cycle list", ["cycle", "list"], 0.3)
        timed("samverkan drafts 1 invitation", ["drafts", "1", "invitation"], 0.3)
        approvals = iter(range(2, CYCLES + 1))
        rows.append(
            (
                "samverkan approve N invitation",
                _median(
                    min(rounds, CYCLES - 1),
                    lambda _: _run([*cli, "approve", str(next(approvals)), "invitation"], env),
                ),
                0.3,
            )
        )
        timed(
            "samverkan stage skip 1 … --dry-run",
            ["stage", "skip", "1", "workshop-reminder", "--dry-run"],
            0.3,
        )
        timed("samverkan participants list", ["participants", "list"], 0.3)
        timed("samverkan indicators --cycle 1", ["indicators", "--cycle", "1"], 0.3)
        timed("samverkan tick (nothing due)", ["tick", "--now", "2027-01-01T09:00"], 1.0)
        rows.append(("samverkan tick (sends a stage)", _median(rounds, sending_tick), 2.0))

    print(f"\ncommand latency: medians of {rounds} runs, each a whole process")
    print(f"  {'baseline: python -c import flows':<38} {baseline:6.3f} s")
    print(f"  {'floor: python -c import sqlmodel':<38} {orm:6.3f} s")
    for label, took, target in rows:
        verdict = "ok" if took < target else "OVER"
        print(
            f"  {label:<38} {took:6.3f} s  {took / baseline:5.1f}x baseline"
            f"  {took / orm:4.1f}x floor  target < {target:g} s  {verdict}"
        )
