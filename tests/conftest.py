"""Shared fixtures: a fresh store per test (SQLite, and PostgreSQL where configured), clean
SAMVERKAN_* variables, a session-wide Prefect harness, and a recording SMTP server."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import create_engine, event, text
from sqlmodel import Session

from flows.settings import REPO_TEMPLATES, Settings
from messaging.transports.maildir import delivered
from store.db import get_engine, open_store
from store.models import Cycle, Message, Organisation, Participant, Response, Stage

DATA = Path(__file__).parent / "data"
EXAMPLE_CSV = REPO_TEMPLATES / "learning-cycle" / "example" / "participants.csv"
PG_URL = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL")

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

# For a module whose tests read pages in a browser: the HTML does not depend on the database,
# and every route and every change behind those pages also runs on PostgreSQL in the
# non-browser tests (test_web.py, test_workspace_*.py), so the browser reads them on SQLite.
PAGES_ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The tests' files (stores, Maildirs, Prefect's home) go to a folder of their own in
    memory (/dev/shm) where the machine has one, removed when the run ends: every commit and
    every delivered message is flushed to disk, and on this machine's disk
    tests/flows/test_resequence.py took 23.5 to 34.5 s on SQLite instead of 18.3 to 24.9 s
    (one process, one run after the other). ``--basetemp`` chooses another place and keeps it."""
    if config.option.basetemp or hasattr(config, "workerinput"):
        return  # given, or an xdist worker, which gets its own folder inside the run's
    memory = Path("/dev/shm")
    if not (memory.is_dir() and os.access(memory, os.W_OK)):
        return
    free = os.statvfs(memory)
    if free.f_bavail * free.f_frsize < 2**30:  # a run writes about 100 MB; a container's is 64 MB
        return
    made = tempfile.mkdtemp(prefix="samverkan-tests-", dir=memory)
    config.option.basetemp = made
    config.add_cleanup(lambda: shutil.rmtree(made, ignore_errors=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files in the order of their names, whatever their folder, so that the long
    end-to-end tests (tests/e2e) are spread among the rest instead of starting together, where
    they slow each other down. Measured on two cores, one run after the other, the whole suite
    took 662 and 651 s collected folder by folder and 599 s in this order. The order within a
    file is kept."""
    items.sort(key=lambda item: item.path.name)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SAMVERKAN_* setting leaks in from the machine or from another test."""
    for name in list(os.environ):
        if name.startswith("SAMVERKAN_") and name != "SAMVERKAN_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user's shell for a ``samverkan`` subprocess: none of this machine's
    SAMVERKAN_* or PREFECT_* settings, and a Prefect home of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAMVERKAN_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


def _on_postgresql(schema: str) -> str:
    """A test's own schema; its commits do not wait for PostgreSQL's disk flush
    (``synchronous_commit=off``), which changes nothing a test can see but a server crash."""
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The schema at its newest migration, made once per test process: an SQLite file to
    copy, and for PostgreSQL the statements the migrations ran, in order, to run again in a
    fresh schema. Alembic's own start costs more than a small test (a tenth of a second, on
    every one of some 800 stores); migrating an empty database is tests/store/test_store.py's."""
    from store.db import forget_freed_pages, migrate

    made: dict[str, Any] = {}
    sqlite_file = tmp_path_factory.mktemp("migrated") / "samverkan.db"
    engine = get_engine(f"sqlite:///{sqlite_file}")
    migrate(engine)
    assert forget_freed_pages(engine)  # everything in the file, nothing in its log
    engine.dispose()
    made["sqlite"] = sqlite_file
    if PG_URL:
        admin = create_engine(PG_URL)
        schema = f"m_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = get_engine(_on_postgresql(schema))
        ran: list[tuple[str, Any]] = []

        def record(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
            ran.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        migrate(engine)
        event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        made["postgresql"] = (admin, ran)
    yield made
    if PG_URL:
        made["postgresql"][0].dispose()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_store: dict[str, Any]
) -> Iterator[str]:
    """A store of this test's own with the schema in place and nothing in it."""
    if request.param == "sqlite":
        shutil.copyfile(migrated_store["sqlite"], tmp_path / "samverkan.db")
        yield f"sqlite:///{tmp_path / 'samverkan.db'}"
        return
    admin, ran = migrated_store["postgresql"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in ran:
            cursor.execute(statement, parameters or None)
    yield _on_postgresql(schema)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for this test, also exported, since flows read them at their entry point."""
    values = {
        "SAMVERKAN_DATABASE_URL": database_url,
        "SAMVERKAN_MAIL_DIR": str(tmp_path / "mail"),
        "SAMVERKAN_SENDER": "samverkan@coordination.example",
        "SAMVERKAN_SENDER_NAME": "Samordningsförbundet",
        "SAMVERKAN_COORDINATOR_EMAIL": "coordinator@coordination.example",
    }
    if not database_url.startswith("sqlite"):
        # A shared database needs the link key set, the same on every worker.
        values["SAMVERKAN_SECRET_KEY"] = "test-key-" + "x" * 32
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = open_store(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def network(engine):  # type: ignore[no-untyped-def]
    """The bundled example network: 13 participants, 5 organisations, every role."""
    from flows.people.participants import import_participants

    import_participants(engine, EXAMPLE_CSV)
    return engine


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session, with flow heartbeats off.

    Unlike the embedded server of ``samverkan worker --every`` it records task runs, as a
    real Prefect server does, so that tests can read them back."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    import flows.orchestration.flows  # noqa: F401  (applies the quiet Prefect defaults before import)
    from flows.orchestration.flows import quiet_prefect

    recorder = {"server.services.task_run_recorder.enabled": True}
    with (
        temporary_settings(updates=recorder),
        prefect_test_harness(server_startup_timeout=120),
        quiet_prefect(),
    ):
        yield


# A small network over two cycles, for indicators and reports (values in test_indicators.py).
SCALES = {
    1: {"p1": 6, "p2": 8, "p3": None, "p4": 5, "p5": 3, "p6": 9, "p7": 4, "p8": None},
    2: {"p1": 7, "p2": 8, "p3": 9, "p5": 5, "p6": 7},
}
PEOPLE = {
    "p1": ("A", "professional"),
    "p2": ("A", "professional"),
    "p3": ("A", "professional"),
    "p4": ("A", "manager"),
    "p5": ("B", "service_user"),
    "p6": ("B", "service_user"),
    "p7": ("B", "service_user"),
    "p8": ("B", "politician"),
}


@pytest.fixture
def prefect_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real Prefect server on PostgreSQL (tests/prefect_server.py); skipped without one."""
    from tests.prefect_server import prefect_server_fixture

    yield from prefect_server_fixture(tmp_path)


@pytest.fixture
def two_cycles(engine):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        orgs = {n: Organisation(name=n) for n in "AB"}
        s.add_all(orgs.values())
        s.flush()
        people = {}
        for key, (org, role) in PEOPLE.items():
            people[key] = Participant(
                name=key,
                email=f"{key}@x.example",
                email_key=f"{key}@x.example",
                organisation_id=orgs[org].id,
                role=role,
                language="sv",
            )
        s.add_all(people.values())
        s.flush()
        ids = []
        for n, month in ((1, 1), (2, 6)):
            stage = followup_ran(s, f"Cycle {n}", datetime(2027, month, 1, tzinfo=UTC))
            for key, value in SCALES[n].items():
                asked(s, stage, people[key])
                if value is not None:
                    answered(s, stage, people[key], "scale-now", scale=value)
                    answered(s, stage, people[key], "what-is-better", text="better")
            ids.append(stage.cycle_id)
        s.commit()
    return ids


def followup_ran(
    s: Session, name: str, start: datetime, *, timezone: str = "Europe/Stockholm"
) -> Stage:
    """A cycle named ``name`` whose follow-up stage ran at ``start`` (indicators, reports)."""
    cycle = Cycle(name=name, template="learning-cycle", timezone=timezone, start_at=start)
    s.add(cycle)
    s.flush()
    stage = Stage(
        cycle_id=cycle.id,
        key="followup",
        kind="followup",
        position=0,
        due_at=start,
        template="followup",
        status="done",
    )
    s.add(stage)
    s.flush()
    return stage


def asked(s: Session, stage: Stage, person: Participant, *, category: str = "followup") -> None:
    """The message ``stage`` sent to ``person``."""
    s.add(
        Message(
            cycle_id=stage.cycle_id,
            stage_id=stage.id,
            participant_id=person.id,
            to_email=person.email,
            to_key=person.email_key,
            to_name=person.name,
            category=category,
            subject="q",
            text="q",
            html="q",
            status="sent",
        )
    )


def answered(
    s: Session,
    stage: Stage,
    person: Participant,
    question: str,
    *,
    scale: int | None = None,
    text: str | None = None,
) -> None:
    """``person``'s answer to one question of ``stage``."""
    s.add(
        Response(
            cycle_id=stage.cycle_id,
            stage_id=stage.id,
            participant_id=person.id,
            question_id=question,
            scale_value=scale,
            text=text,
        )
    )


def tick(now: datetime):  # type: ignore[no-untyped-def]
    """Run one tick at a simulated time, as a one-shot ``samverkan tick`` does with no Prefect
    server configured: the same stages and delivery, without Prefect (flows/cycles/tick.py).
    tests/flows/test_cycle_flow.py runs it as Prefect flows (``prefect_tick``)."""
    from flows.cycles.tick import tick_direct
    from flows.settings import load_settings

    settings = load_settings()
    return tick_direct(settings, open_store(settings.database_url), now)


def prefect_tick(now: datetime):  # type: ignore[no-untyped-def]
    """Run the tick flow at a simulated time (inside the session's Prefect harness)."""
    from flows.orchestration.flows import tick as tick_flow

    return tick_flow(now)


def launch_learning_cycle(
    engine,
    settings,
    start: datetime,
    workshop: datetime,  # type: ignore[no-untyped-def]
    *,
    location: str = "Stadshuset",
    approve: bool = True,
    **extra: object,
) -> int:
    """Launch the bundled learning cycle named "Vår 2027" (and approve its invitation)."""
    from flows.cycles.approve import approve_stage
    from flows.cycles.launch import launch_cycle

    cycle_id = launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="Vår 2027",
        start=start.isoformat(),
        variables={"workshop_at": workshop.isoformat(), "location": location},
        **extra,
    )  # type: ignore[arg-type]
    if approve:
        approve_stage(engine, cycle_id=cycle_id, key="invitation")
    return cycle_id


@pytest.fixture
def invited(network, settings):  # type: ignore[no-untyped-def]
    """The learning cycle launched (tests/flows/test_resequence.py's times) and its invitation and
    workshop invite sent: what the mailbox tests answer to."""
    from tests.flows.test_resequence import START, WORKSHOP

    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP)
    tick(START)
    return cycle_id


# Parsed messages by file: a delivered message's file is never written again (a new one gets
# a new name), and tests read a Maildir again after each tick. Parsing with the default
# policy was a fifth of the time of the tests that read mail.
_PARSED: dict[tuple[str, int, int], EmailMessage] = {}


def read_maildir(root: Path) -> dict[str, list[EmailMessage]]:
    """Every message delivered to a Maildir tree, by recipient folder (not to be changed by
    the caller: a message read twice is the same object)."""
    found: dict[str, list[EmailMessage]] = {}
    if not root.exists():
        return found
    for box in sorted(root.iterdir()):
        msgs = []
        for f in delivered(box):
            seen = f.stat()
            key = (str(f), seen.st_mtime_ns, seen.st_size)
            if key not in _PARSED:
                _PARSED[key] = cast(
                    EmailMessage, message_from_bytes(f.read_bytes(), policy=policy.default)
                )
            msgs.append(_PARSED[key])
        found[box.name] = msgs
    return found


@pytest.fixture
def accounts(engine, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """One workspace account of each role (tests/workspace.py names them and the password).

    Their passwords are hashed with Argon2id at its cheapest (1 pass over 1 MiB, one lane)
    instead of samverkan's 3 passes over 64 MiB in 4 lanes, 0.2 s a hash here: the suite hashes
    and checks passwords thousands of times. tests/flows/test_workspace_auth.py checks the real
    parameters without this fixture."""
    from argon2 import PasswordHasher

    from flows.people import accounts as people
    from flows.people.accounts import add_account
    from tests.workspace import COORDINATOR, PASSWORD, SIGNER, SIGNER_ORG, VIEWER

    quick = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(people, "_hasher", quick)
    dummy = quick.hash("not a password of anyone")
    monkeypatch.setattr(people, "_dummy", lambda: dummy)

    add_account(engine, email=COORDINATOR, role="coordinator", password=PASSWORD)
    add_account(engine, email=SIGNER, role="signer", organisation=SIGNER_ORG, password=PASSWORD)
    add_account(engine, email=VIEWER, role="viewer", password=PASSWORD)
    return engine


@pytest.fixture
def web(settings, accounts):  # type: ignore[no-untyped-def]
    """A factory of workspace clients: ``web()`` anonymous, ``web(EMAIL)`` signed in."""
    from flows.web.app import create_app
    from tests.workspace import Client

    app = create_app(settings, accounts)

    def make(email: str | None = None) -> Client:
        client = Client(app)
        if email is not None:
            done = client.login(email)
            assert done.status_code == 303, done.text
        return client

    return make
