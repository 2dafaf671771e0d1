"""Data access as keyword-only functions that take a session."""

from __future__ import annotations

from collections import defaultdict
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
    or_,
    true,
    update,
)
from sqlmodel import Session, col, select

from store.errors import NotFound
from store.models import (
    FINISHED_STAGE,
    AuditEntry,
    Cycle,
    CycleMember,
    CycleStatus,
    Level,
    Meeting,
    MeetingAttendee,
    Message,
    MessageStatus,
    Organisation,
    Participant,
    Response,
    Stage,
    StageStatus,
)
from store.types import utcnow

Member = tuple[Participant, Organisation]


def find_participant(session: Session, *, email: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.email_key == email.strip().lower())
    ).first()


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


def list_participants(session: Session) -> list[Member]:
    rows = session.exec(
        select(Participant, Organisation)
        .join(Organisation, col(Participant.organisation_id) == Organisation.id)
        .order_by(Organisation.name, Participant.name)
    ).all()
    return [(p, o) for p, o in rows]


def list_cycles(session: Session) -> list[Cycle]:
    return list(session.exec(select(Cycle).order_by(col(Cycle.id))).all())


def get_cycle(session: Session, *, cycle_id: int) -> Cycle:
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise NotFound(f"no cycle with id {cycle_id} (see: samverkan cycle list)")
    return cycle


def stages_of(session: Session, *, cycle_id: int) -> list[Stage]:
    return list(
        session.exec(
            select(Stage).where(Stage.cycle_id == cycle_id).order_by(col(Stage.position))
        ).all()
    )


def get_stage(session: Session, *, cycle_id: int, key: str) -> Stage:
    stage = session.exec(select(Stage).where(Stage.cycle_id == cycle_id, Stage.key == key)).first()
    if stage is None:
        keys = ", ".join(s.key for s in stages_of(session, cycle_id=cycle_id))
        raise NotFound(f"cycle {cycle_id} has no stage {key!r} (stages: {keys})")
    return stage


def members(
    session: Session, *, cycle_id: int, after: int | None = None, limit: int | None = None
) -> list[Member]:
    """The cycle's members by participant id; ``after``/``limit`` read one page of them."""
    query = (
        select(Participant, Organisation)
        .join(CycleMember, col(CycleMember.participant_id) == Participant.id)
        .join(Organisation, col(Participant.organisation_id) == Organisation.id)
        .where(CycleMember.cycle_id == cycle_id)
        .order_by(col(Participant.id))
    )
    if after is not None:
        query = query.where(col(Participant.id) > after)
    if limit is not None:
        query = query.limit(limit)
    return [(p, o) for p, o in session.exec(query).all()]


def active_member_counts(session: Session, *, cycle_id: int) -> tuple[int, int]:
    """(participants, organisations) of the cycle who can be written to."""
    row = session.exec(
        select(func.count(), func.count(func.distinct(Participant.organisation_id)))
        .select_from(CycleMember)
        .join(Participant, col(CycleMember.participant_id) == Participant.id)
        .where(
            CycleMember.cycle_id == cycle_id,
            col(Participant.erased).is_(False),
            col(Participant.consent).is_(True),
        )
    ).one()
    return int(row[0]), int(row[1])


def meeting_of(session: Session, *, stage_id: int) -> Meeting | None:
    return session.exec(select(Meeting).where(Meeting.stage_id == stage_id)).first()


def partstats(session: Session, *, meeting_id: int) -> dict[int, str]:
    rows = session.exec(
        select(MeetingAttendee.participant_id, MeetingAttendee.partstat).where(
            MeetingAttendee.meeting_id == meeting_id
        )
    ).all()
    return {pid: str(stat) for pid, stat in rows}


def respondents(
    session: Session, *, stage_id: int | None = None, cycle_id: int | None = None
) -> set[int]:
    query = select(Response.participant_id).distinct()
    if stage_id is not None:
        query = query.where(Response.stage_id == stage_id)
    if cycle_id is not None:
        query = query.where(Response.cycle_id == cycle_id)
    return {pid for pid in session.exec(query).all() if pid is not None}


def ready_messages(session: Session, *, now: datetime) -> int:
    """How many messages wait in the outbox and may be sent at ``now``."""
    return int(
        session.exec(
            select(func.count())
            .select_from(Message)
            .where(
                col(Message.status).in_([MessageStatus.queued.value, MessageStatus.retry.value]),
                or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
            )
        ).one()
    )


def message_counts(session: Session, *, cycle_id: int) -> dict[int, dict[str, int]]:
    """Messages of a cycle by stage id and status."""
    rows = session.exec(
        select(Message.stage_id, Message.status, func.count())
        .where(Message.cycle_id == cycle_id)
        .group_by(col(Message.stage_id), col(Message.status))
    ).all()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for stage_id, status, n in rows:
        counts[stage_id][str(status)] = n
    return dict(counts)


def due_cycle_ids(session: Session, *, now: datetime) -> list[int]:
    """Running cycles with at least one stage due at ``now`` that has not run yet.

    One indexed query, whatever the number of cycles: ticks over many quiet cycles stay cheap.
    """
    waiting = [StageStatus.pending.value, StageStatus.approved.value]
    rows = session.exec(
        select(Stage.cycle_id)
        .join(Cycle, col(Cycle.id) == Stage.cycle_id)
        .where(
            Cycle.status == CycleStatus.running.value,
            col(Stage.status).in_(waiting),
            col(Stage.due_at) <= now,
        )
        .distinct()
        .order_by(col(Stage.cycle_id))
    ).all()
    return list(rows)


def finished_cycle_ids(session: Session, *, now: datetime) -> list[int]:
    """Running cycles with nothing ahead at ``now`` (one query): they have stages, none of
    them left to run, and no announced meeting that has yet to start (it can still be moved
    or cancelled, which a completed cycle no longer allows)."""
    finished = [s.value for s in FINISHED_STAGE]
    open_stage = (
        select(Stage.id)
        .where(Stage.cycle_id == Cycle.id, col(Stage.status).not_in(finished))
        .exists()
    )
    meeting_ahead = (
        select(Meeting.id)
        .where(
            Meeting.cycle_id == Cycle.id,
            col(Meeting.cancelled).is_(False),
            col(Meeting.starts_at) > now,
        )
        .exists()
    )
    any_stage = select(Stage.id).where(Stage.cycle_id == Cycle.id).exists()
    rows = session.exec(
        select(Cycle.id)
        .where(Cycle.status == CycleStatus.running.value, any_stage, ~open_stage, ~meeting_ahead)
        .order_by(col(Cycle.id))
    ).all()
    return [cycle_id for cycle_id in rows if cycle_id is not None]


def audit(
    session: Session,
    *,
    cycle_id: int | None,
    action: str,
    stage_key: str | None = None,
    detail: str = "",
    reason: str | None = None,
    actor: str = "coordinator",
) -> AuditEntry:
    entry = AuditEntry(
        cycle_id=cycle_id,
        action=action,
        stage_key=stage_key,
        detail=detail,
        reason=reason,
        actor=actor,
    )
    session.add(entry)
    return entry


def audit_log(session: Session, *, cycle_id: int) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.cycle_id == cycle_id)
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        ).all()
    )
