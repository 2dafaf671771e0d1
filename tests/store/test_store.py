"""The store: migrations agree with the models, and times stay time-zone aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

from store.db import SCHEMA_REVISION, current_revision, head_revision, open_store
from store.errors import ConfigError
from store.models import AuditEntry


def test_migrations_create_exactly_the_models(engine) -> None:  # type: ignore[no-untyped-def]
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert {
        "organisation",
        "participant",
        "cycle",
        "stage",
        "message",
        "meeting",
        "response",
        "audit_entry",
    } <= tables


def test_the_schema_revision_commands_compare_with_is_alembics_head() -> None:
    # Commands check the database against SCHEMA_REVISION without loading Alembic; a new
    # migration must move it, or every command would migrate (or skip migrating) wrongly.
    assert head_revision() == SCHEMA_REVISION


def test_times_come_back_aware_and_in_utc(engine) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2027, 2, 10, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    with Session(engine) as s:
        s.add(AuditEntry(action="x", at=when))
        s.commit()
    with Session(engine) as s:
        entry = s.exec(select(AuditEntry)).one()
        assert entry.at == when and entry.at.tzinfo is not None
        assert entry.at.utcoffset() == timedelta(0)


def test_naive_times_are_refused(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import StatementError

    with Session(engine) as s:
        s.add(AuditEntry(action="x", at=datetime(2027, 1, 1)))
        with pytest.raises(StatementError, match="naive"):
            s.commit()


def test_reopening_a_database_keeps_its_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    engine = open_store(url)
    with Session(engine) as s:
        s.add(AuditEntry(action="kept", at=datetime.now(UTC)))
        s.commit()
    engine.dispose()
    from store import db

    db._ready.cache_clear()  # as a new process would: no engine cached
    db.get_engine.cache_clear()
    again = open_store(url)
    with Session(again) as s:
        assert [e.action for e in s.exec(select(AuditEntry)).all()] == ["kept"]


def test_a_database_in_a_missing_folder_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="folder for the database does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_an_unusable_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="SAMVERKAN_DATABASE_URL"):
        open_store("nosuchdb://x")


def test_a_database_from_the_first_release_is_upgraded_with_its_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from sqlalchemy import text

    from store import db
    from store.models import Cycle

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = db.get_engine(url)
    command.upgrade(db._alembic_config(old), "0001")
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cycle (name, template, timezone, status, start_at, variables, "
                "plan_version, created_at) VALUES ('Höst 2026', 'learning-cycle', "
                "'Europe/Stockholm', 'completed', '2026-09-01 07:00:00', '{}', 3, "
                "'2026-08-01 07:00:00')"
            )
        )
    assert db.current_revision(old) == "0001"
    engine = open_store(url)
    assert db.current_revision(engine) == db.head_revision() != "0001"
    with Session(engine) as s:
        [cycle] = s.exec(select(Cycle)).all()
    assert (cycle.name, cycle.plan_version, cycle.steering) == ("Höst 2026", 3, None)
    assert cycle.start_at == datetime(2026, 9, 1, 7, 0, tzinfo=UTC)


def test_the_link_key_lives_outside_the_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import stat

    from flows.settings import Settings

    local = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    key = local.link_key()
    path = tmp_path / "x.key"
    assert path.read_text().encode() == key and len(key) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local.link_key() == key  # made once, then reused
    shared = Settings(database_url="postgresql+psycopg://db.example/samverkan")
    with pytest.raises(ConfigError, match="set SAMVERKAN_SECRET_KEY"):
        shared.link_key()
    assert (
        Settings(database_url="postgresql+psycopg://db.example/s", secret_key="k" * 40).link_key()
        == b"k" * 40
    )
