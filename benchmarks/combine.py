"""Combining a national view (flows/reporting/combine.py): 75 collaborations, each with 10
years of annual surveys asking 20 scale questions of 5 respondent groups, exported as schema
2 CSV (one file per collaboration, with its organisation x role rows as a real export has
them), then ``combine`` over all 75 files.

Side by side, in this script: the floor, reading every row of the same files with the
standard library's csv reader and nothing else; the ratio says what combining costs on top
of reading. Peak memory (tracemalloc) of combining is measured in a run of its own.
Rounds: SAMVERKAN_BENCH_ROUNDS (default 3); medians.
"""

from __future__ import annotations

import csv
import os
import platform
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from flows.reporting.by_question import SCHEMA, Row, histogram_text
from flows.reporting.combine import combine

COLLABORATIONS = 75
YEARS = 10
QUESTIONS = [f"q{i:02d}" for i in range(20)]
GROUPS = ["service-users", "staff", "managers", "board", "referrers"]
ROLES = ["service_user", "professional", "manager", "politician", "facilitator"]
ORGS = ["Kommun", "Region", "Försäkringskassan", "Arbetsförmedlingen"]
FIELDS = list(Row.__dataclass_fields__)


def _histogram(rng: random.Random, n: int) -> dict[int, int]:
    h: dict[int, int] = {}
    for _ in range(n):
        v = min(10, max(0, round(rng.gauss(6, 2))))
        h[v] = h.get(v, 0) + 1
    return h


def _emit(out: object, base: list[object], *fields: object) -> None:
    q, group, org, role, indicator, *rest = fields
    out.writerow([*base, "nationell", 1, q, group, org, role, indicator, *rest])  # type: ignore[attr-defined]


def write_exports(folder: Path, seed: int = 1) -> tuple[list[Path], int]:
    rng = random.Random(seed)
    paths = []
    for c in range(COLLABORATIONS):
        name = f"Samordningsförbund {c:02d}"
        path = folder / f"collaboration-{c:02d}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(FIELDS)
            for y in range(YEARS):
                year = 2017 + y
                base = [SCHEMA, name, y + 1, f"Årlig enkät {year}", f"{year}-03-01", year]

                cells = [(o, r) for o in ORGS for r in ROLES] + [(o, "*") for o in ORGS]
                cells += [("*", r) for r in ROLES] + [("*", "*")]
                for org, role in cells:
                    small = rng.random() < 0.15 and "*" not in (org, role)
                    asked = rng.randint(3, 40)
                    for ind in ("asked", "answered", "response_rate"):
                        if small:
                            _emit(out, base, "*", "*", org, role, ind, "", "", True, "")
                        else:
                            _emit(out, base, "*", "*", org, role, ind, asked, asked, False, "")
                    for q in QUESTIONS:
                        if small:
                            for ind in ("scale_mean", "scale_median", "scale_histogram"):
                                _emit(out, base, q, "*", org, role, ind, "", "", True, "")
                            continue
                        h = _histogram(rng, asked)
                        _emit(out, base, q, "*", org, role, "scale_mean", 6.0, asked, False, "")
                        _emit(out, base, q, "*", org, role, "scale_median", 6.0, asked, False, "")
                        _emit(
                            out,
                            base,
                            q,
                            "*",
                            org,
                            role,
                            "scale_histogram",
                            "",
                            asked,
                            False,
                            histogram_text(h),
                        )
                for group in GROUPS:
                    hidden = rng.random() < 0.1
                    asked = rng.randint(5, 60)
                    answered = rng.randint(0, asked)
                    for ind, value in (
                        ("asked", asked),
                        ("answered", answered),
                        ("response_rate", round(answered / asked, 3)),
                    ):
                        if hidden:
                            _emit(out, base, "*", group, "*", "*", ind, "", "", True, "")
                        else:
                            _emit(out, base, "*", group, "*", "*", ind, value, asked, False, "")
                    for q in QUESTIONS:
                        if hidden:
                            for ind in ("scale_mean", "scale_median", "scale_histogram"):
                                _emit(out, base, q, group, "*", "*", ind, "", "", True, "")
                            continue
                        h = _histogram(rng, answered)
                        text = histogram_text(h)
                        _emit(out, base, q, group, "*", "*", "scale_mean", 6.0, answered, False, "")
                        _emit(
                            out, base, q, group, "*", "*", "scale_median", 6.0, answered, False, ""
                        )
                        _emit(
                            out,
                            base,
                            q,
                            group,
                            "*",
                            "*",
                            "scale_histogram",
                            "",
                            answered,
                            False,
                            text,
                        )
        paths.append(path)
    return paths, sum(_lines(p) - 1 for p in paths)


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def read_only(paths: list[Path]) -> int:
    """The floor: every row of every file read by csv.reader, and nothing done with it."""
    seen = 0
    for path in paths:
        with path.open(newline="", encoding="utf-8") as f:
            for _ in csv.reader(f):
                seen += 1
    return seen


def main() -> None:
    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths, rows = write_exports(Path(tmp))
        made = time.perf_counter() - started
        size = sum(p.stat().st_size for p in paths)
        print(
            f"combine: {COLLABORATIONS} collaborations x {len(GROUPS)} respondent groups x "
            f"{len(QUESTIONS)} questions x {YEARS} years: {rows:,} rows in {len(paths)} files "
            f"({size / 2**20:.0f} MiB), written in {made:.1f} s "
            f"({platform.python_implementation()} {platform.python_version()})"
        )
        floor, combined = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            read_only(paths)
            floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, out = combine(paths, min_group=3)
            combined.append(time.perf_counter() - t0)
        tracemalloc.start()
        combine(paths, min_group=3)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        f_med, c_med = statistics.median(floor), statistics.median(combined)
        print(f"  reading the rows only (csv.reader): {f_med:.2f} s (median of {rounds})")
        print(
            f"  combine: {c_med:.2f} s = {c_med / f_med:.1f}x reading; "
            f"{rows / c_med:,.0f} rows/s; {len(out):,} combined rows"
        )
        print(f"  combine peak memory (tracemalloc): {peak / 2**20:.1f} MiB")
