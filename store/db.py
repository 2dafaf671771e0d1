"""The engine and the schema: created lazily, migrated with Alembic on first use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlmodel import Session, create_engine

from store.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# The newest migration in store/migrations/versions. A command compares the database's
# revision with this string instead of loading Alembic (a third of a second) every time;
# tests/store/test_store.py checks it against Alembic's own head, so a new migration that forgets
# to update it fails there.
SCHEMA_REVISION = "0007"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers go on while a tick writes;
    # the busy timeout makes a second writer wait instead of failing at once; secure_delete
    # zeroes what a change frees, so an erased person's old row is not left in the file.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """Return the engine for ``url``, created on first use.

    Created lazily rather than at import: a module-level engine cannot be pickled into a
    served Prefect flow, which is pickled by value ("cannot pickle '_thread.RLock'").
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 15})
            event.listen(engine, "connect", _on_sqlite_connect)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"SAMVERKAN_DATABASE_URL is not a usable database URL: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"SAMVERKAN_DATABASE_URL needs a driver that is not installed: {exc.name}"
        ) from None
    return engine


def forget_freed_pages(engine: Engine) -> bool:
    """After an erasure: on SQLite, copy the write-ahead log into the database and empty it,
    since the log still holds the pages as they were before the change. False when another
    process's read kept it from being emptied.

    PostgreSQL keeps old row versions until (auto)vacuum removes them; nothing here can
    reach its files.
    """
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as conn:
        # (busy, log frames, checkpointed): busy when a reader kept it past the busy timeout.
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").scalar()
    return not busy


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database samverkan has not set up. One
    query, without reflecting the schema first (every command asks)."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except ProgrammingError:  # PostgreSQL: no such table
        return None
    except OperationalError as exc:  # SQLite says "no such table" as an OperationalError
        if "no such table" in str(exc.orig):
            return None
        raise


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creating it on an empty database)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


@lru_cache(maxsize=8)
def _ready(url: str) -> Engine:
    engine = get_engine(url)
    try:
        if current_revision(engine) != SCHEMA_REVISION:
            migrate(engine)
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(f"cannot open the database {engine.url!r}: {reason}") from None
    return engine


def open_store(url: str) -> Engine:
    """The engine for ``url`` with its schema at the newest migration."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.exists():
            raise ConfigError(f"the folder for the database does not exist: {folder}")
    return _ready(url)


def engine_of(session: Session) -> Engine:
    """The engine a session works on (for work that opens sessions of its own)."""
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
