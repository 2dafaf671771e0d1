"""Organisations and participants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    String,
    any_,
    bindparam,
    column,
    false,
    func,
    insert,
    literal,
    literal_column,
    true,
    update,
)
from sqlmodel import Session, col, select

from store.models import Level, Organisation, Participant
from store.types import utcnow

Member = tuple[Participant, Organisation]


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Keys per IN (...) of the bulk look-ups below: well under the bound parameters a statement
# may have (999 on SQLite builds older than 3.32).
IN_CHUNK = 900


def _ids_by(session: Session, key: Any, values: Iterable[str]) -> dict[str, int]:
    """The id of each row of ``key``'s table whose ``key`` is one of ``values``, by value."""
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return {}
    if _on_postgresql(session):
        # All of them in one array parameter: psycopg takes long over a statement with many
        # placeholders (50,000 keys: 1.45 s in chunks of IN (...), 0.42 s as one array).
        keys = bindparam("keys", wanted, type_=ARRAY(String))
        conditions = [key == any_(keys)]
    else:
        chunks = range(0, len(wanted), IN_CHUNK)
        conditions = [key.in_(wanted[start : start + IN_CHUNK]) for start in chunks]
    found: dict[str, int] = {}
    for condition in conditions:
        found.update(session.execute(select(key, key.table.c.id).where(condition)).all())
    return found


def organisation_names(session: Session) -> list[str]:
    table = Organisation.__table__  # type: ignore[attr-defined]
    return [str(n) for n in session.execute(select(table.c.name).order_by(table.c.name)).scalars()]


def organisation_ids(session: Session, *, names: Iterable[str]) -> dict[str, int]:
    """The id of each organisation of ``names`` that exists, by name."""
    table = Organisation.__table__  # type: ignore[attr-defined]
    return _ids_by(session, table.c.name, names)


def create_organisations(session: Session, *, names: Iterable[str]) -> dict[str, int]:
    """Add the organisations of ``names`` that do not exist yet (one INSERT for all of them);
    return the id of every one of ``names``, by name."""
    wanted = list(dict.fromkeys(names))
    found = organisation_ids(session, names=wanted)
    new = [name for name in wanted if name not in found]
    if new:
        now = utcnow()
        session.execute(
            insert(Organisation.__table__),  # type: ignore[attr-defined]
            [{"name": name, "level": Level.local.value, "created_at": now} for name in new],
        )
        found.update(organisation_ids(session, names=new))
    return found


def participant_ids(session: Session, *, email_keys: Iterable[str]) -> dict[str, int]:
    """The id of each participant whose email key is one of ``email_keys``, by key."""
    table = Participant.__table__  # type: ignore[attr-defined]
    return _ids_by(session, table.c.email_key, email_keys)


def _once(session: Session, target: Any, value: Any) -> Any:
    """``value`` for the column ``target`` written into the statement as a literal, so that an
    executemany converts it once rather than once a row (on SQLite, 50,000 new participants
    went in in 0.94 s instead of 1.93 s with their two timestamps bound to every row)."""
    dialect = session.get_bind().dialect
    sql = literal(value, target.type).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    return literal_column(str(sql), target.type)


def _unnest(table: Any, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> Any:
    """On PostgreSQL: ``rows`` as a table named ``given``, sent as one array a column, with
    each row's place in ``n``. One set-based statement over it took about 1.75 s for 50,000
    new participants where an executemany took 2.95 s (timed side by side, rolled back,
    on the rows of python -m benchmarks import)."""
    arrays = [
        bindparam(f"all_{f}", [row[f] for row in rows], type_=ARRAY(table.c[f].type))
        for f in fields
    ]
    columns = [column(f, table.c[f].type) for f in fields]
    return (
        func.unnest(*arrays)
        .table_valued(*columns, with_ordinality="n")
        .render_derived(name="given")
    )


PARTICIPANT_FIELDS = ("name", "email", "organisation_id", "role", "language")


def insert_participants(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Add participants in one statement: each row has email_key and PARTICIPANT_FIELDS;
    consent and the timestamps are filled in here. Ids follow the order of ``rows``."""
    if not rows:
        return
    table = Participant.__table__  # type: ignore[attr-defined]
    fields = ("email_key", *PARTICIPANT_FIELDS)
    now = utcnow()
    if _on_postgresql(session):
        given = _unnest(table, rows, fields)
        stamp = literal(now, table.c.created_at.type)
        values = given.select().with_only_columns(
            *(given.c[f] for f in fields), true(), false(), stamp, stamp
        )
        statement = insert(table).from_select(
            [*fields, "consent", "erased", "created_at", "updated_at"],
            values.order_by(given.c.n),
        )
        session.execute(statement)
        return
    stamp = _once(session, table.c.created_at, now)
    statement = insert(table).values(consent=True, erased=False, created_at=stamp, updated_at=stamp)
    session.execute(statement, [{f: row[f] for f in fields} for row in rows])


def update_participants(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Change participants in one statement: each row has the participant's id and the new
    PARTICIPANT_FIELDS; updated_at is set here."""
    if not rows:
        return
    table = Participant.__table__  # type: ignore[attr-defined]
    now = utcnow()
    if _on_postgresql(session):
        given = _unnest(table, rows, ("id", *PARTICIPANT_FIELDS))
        changes = {f: given.c[f] for f in PARTICIPANT_FIELDS}
        stamp = literal(now, table.c.updated_at.type)
        statement = (
            update(table).where(table.c.id == given.c.id).values({**changes, "updated_at": stamp})
        )
        session.execute(statement)
        return
    changes = {f: bindparam(f"new_{f}") for f in PARTICIPANT_FIELDS}
    stamp = _once(session, table.c.updated_at, now)
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({**changes, "updated_at": stamp})
    )
    session.execute(
        statement,
        [{"row_id": row["id"], **{f"new_{f}": row[f] for f in PARTICIPANT_FIELDS}} for row in rows],
    )


def find_participant(session: Session, *, email: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.email_key == email.strip().lower())
    ).first()


def list_participants(session: Session) -> list[Member]:
    rows = session.exec(
        select(Participant, Organisation)
        .join(Organisation, col(Participant.organisation_id) == Organisation.id)
        .order_by(Organisation.name, Participant.name)
    ).all()
    return [(p, o) for p, o in rows]


def clear_consent(session: Session, *, participant_id: int, at: datetime) -> bool:
    """Record at ``at`` that the participant consents no more; False if they had already
    withdrawn it. Conditional, so that two requests at once record it once."""
    changed = session.exec(
        update(Participant)
        .where(col(Participant.id) == participant_id, col(Participant.consent).is_(True))
        .values(consent=False, updated_at=at)
    ).rowcount
    return bool(changed)
