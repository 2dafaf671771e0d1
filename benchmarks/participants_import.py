"""Importing participants from CSV: 50,000 rows through ``import_participants`` (read, check
every row, write in one transaction), against a plain ``csv.reader`` pass over the same file
measured in the same run.

1. ``csv.reader`` over the file (the baseline: what reading alone costs);
2. ``parse_csv`` over it: reading and checking every row, nothing written;
3. an import into a fresh store (every row new);
4. the same file again (every row an update).

On SQLite, and on PostgreSQL in a database of its own when SAMVERKAN_TEST_POSTGRES_URL is set.
Each figure is the median of SAMVERKAN_BENCH_ROUNDS rounds (3 by default): this machine is
shared, and its speed drifts.

Target: (3) and (4) >= 10,000 rows/s on each database.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from flows.people.participants import import_participants, parse_csv
from store.db import open_store
from store.models import Participant

ROWS = 50_000
TARGET = 10_000  # rows/s

FIRST = [
    "Åsa", "Björn", "Örjan", "Märta", "Anna", "Erik", "Lars", "Karin", "Sven", "Ingrid",
    "Jönsson", "Zoë", "José", "Aïcha", "Mohammed", "Fatima", "Li", "Sam", "Emma", "Oskar",
]  # fmt: skip
LAST = [
    "Öberg", "Åkesson", "Ström", "Lindqvist", "Nyström", "Bäckström", "Andersson", "Berg",
    "Holm", "Sjögren", "Karlsson", "Müller", "O'Brien", "Núñez", "Lee", "Hussein", "Wik",
]  # fmt: skip
ORGANISATIONS = [
    "Försäkringskassan", "Arbetsförmedlingen", "Region Skåne", "Malmö stad", "Lunds kommun",
    "Socialtjänsten Eslöv", "Brukarrådet", "Vårdcentralen Åhus", "Kommunförbundet",
    "Samordningsförbundet Väst", "Psykiatrin Nord", "Studieförbundet Bilda",
]  # fmt: skip
DOMAINS = ["kommun.example", "Region.Example", "fk.example", "af.example", "mail.example"]
ROLES = ["service_user", "professional", "manager", "politician", "facilitator"]
LANGUAGES = ["sv", "sv", "en", "", "SV"]
ASCII = str.maketrans("åäöÅÄÖéèëïüñúóç'", "aaoAAOeeeiunuoc-")


def make_csv(path: Path, rows: int = ROWS) -> None:
    """A valid participants file with realistic, partly non-ASCII names."""
    rng = random.Random(5)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["name", "email", "organisation", "role", "language"])
    for i in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}.{i}".translate(ASCII)
        if i % 3:
            local = local.lower()
        writer.writerow(
            [
                f"{first} {last}" if i % 7 else f"{first} {last}-{rng.choice(LAST)}",
                f"{local}@{rng.choice(DOMAINS)}",
                rng.choice(ORGANISATIONS),
                rng.choice(ROLES) if i % 11 else rng.choice(ROLES).title(),
                rng.choice(LANGUAGES),
            ]
        )
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))


def csv_baseline(path: Path) -> float:
    """Seconds for a plain csv.reader over the file (decoded as the import decodes it)."""
    t0 = time.perf_counter()
    text = path.read_bytes().decode("utf-8-sig")
    count = sum(1 for _ in csv.reader(io.StringIO(text, newline="")))
    elapsed = time.perf_counter() - t0
    assert count == ROWS + 1
    return elapsed


def parse_only(path: Path) -> float:
    """Seconds for parse_csv over the file."""
    data = path.read_bytes()
    t0 = time.perf_counter()
    rows = parse_csv(data)
    elapsed = time.perf_counter() - t0
    assert len(rows) == ROWS
    return elapsed


def import_round(url: str, path: Path) -> tuple[float, float]:
    """Seconds for a first import into a fresh store and for a second one of the same file."""
    engine = open_store(url)
    try:
        t0 = time.perf_counter()
        first = import_participants(engine, path)
        t1 = time.perf_counter()
        second = import_participants(engine, path)
        t2 = time.perf_counter()
        assert (first.created, first.updated) == (ROWS, 0), first
        assert (second.created, second.updated) == (0, ROWS), second
        with Session(engine) as s:
            assert s.execute(select(func.count()).select_from(Participant)).scalar() == ROWS
    finally:
        engine.dispose()
    return t1 - t0, t2 - t1


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def postgres_store(server: str) -> Iterator[str]:
    """A database of its own on the server, dropped afterwards."""
    name = f"samverkan_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    def say(line: str) -> None:
        print(line, flush=True)

    rounds = int(os.environ.get("SAMVERKAN_BENCH_ROUNDS", "3"))
    say(
        f"import: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {ROWS:,} rows, median of {rounds} rounds"
    )
    stores = [("SQLite", sqlite_store)]
    pg = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL")
    if pg:
        stores.append(("PostgreSQL", lambda: postgres_store(pg)))
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "participants.csv"
        make_csv(path)
        say(f"  file: {path.stat().st_size / 2**20:.1f} MiB")
        for label, store in stores:
            base, parse, new, again = [], [], [], []
            for _ in range(rounds):
                base.append(csv_baseline(path))
                parse.append(parse_only(path))
                with store() as url:
                    first, second = import_round(url, path)
                new.append(first)
                again.append(second)
            b, p, n, a = (statistics.median(v) for v in (base, parse, new, again))
            say(f"  {label}:")
            say(f"    (1) csv.reader (baseline)      {ROWS / b:9,.0f} rows/s")
            figures = (
                ("(2) parse_csv, nothing written", p),
                ("(3) import, all new", n),
                ("(4) import again, all updates", a),
            )
            for name, seconds in figures:
                rate = ROWS / seconds
                say(
                    f"    {name:<30} {rate:9,.0f} rows/s  ({seconds:.2f} s, "
                    f"{seconds / b:.0f}x the baseline's time)"
                )
                if name.startswith(("(3)", "(4)")):
                    checks.append((f"{label} {name[:3]} >= {TARGET:,} rows/s", rate))
    for name, rate in checks:
        say(f"  {name:<36} {rate:9,.0f}  {'met' if rate >= TARGET else 'NOT MET'}")


if __name__ == "__main__":
    main()
