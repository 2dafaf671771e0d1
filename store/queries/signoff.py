"""Sign-off: the texts a stage sends as signed, the signatures on them, the comment thread,
and who has been told what."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from store.models import (
    Cycle,
    CycleStatus,
    Message,
    Signature,
    SignoffComment,
    SignoffNotice,
    SignoffVariant,
    Stage,
    StageStatus,
)


def signoff_variants(
    session: Session, *, stage_id: int, current: bool | None = None
) -> list[SignoffVariant]:
    query = select(SignoffVariant).where(SignoffVariant.stage_id == stage_id)
    if current is not None:
        query = query.where(col(SignoffVariant.current).is_(current))
    return list(
        session.exec(query.order_by(col(SignoffVariant.language), col(SignoffVariant.id))).all()
    )


def variant_by_hash(session: Session, *, stage_id: int, content_hash: str) -> SignoffVariant | None:
    return session.exec(
        select(SignoffVariant).where(
            SignoffVariant.stage_id == stage_id, SignoffVariant.content_hash == content_hash
        )
    ).first()


def add_variant(session: Session, *, values: dict[str, Any]) -> None:
    """Store a text of a stage, unless another look stored the same one first."""
    table = SignoffVariant.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(table).values(**values).on_conflict_do_nothing())


def mark_current_variants(session: Session, *, stage_id: int, hashes: Sequence[str]) -> None:
    """Only ``hashes`` are what the stage would send now."""
    session.exec(
        update(SignoffVariant)
        .where(col(SignoffVariant.stage_id) == stage_id)
        .values(current=col(SignoffVariant.content_hash).in_(list(hashes)))
    )


def signatures(session: Session, *, stage_id: int, valid: bool | None = None) -> list[Signature]:
    query = select(Signature).where(Signature.stage_id == stage_id)
    if valid is True:
        query = query.where(col(Signature.void_at).is_(None))
    elif valid is False:
        query = query.where(col(Signature.void_at).is_not(None))
    return list(session.exec(query.order_by(col(Signature.signed_at), col(Signature.id))).all())


def signoff_comments(session: Session, *, stage_id: int) -> list[SignoffComment]:
    return list(
        session.exec(
            select(SignoffComment)
            .where(SignoffComment.stage_id == stage_id)
            .order_by(col(SignoffComment.at), col(SignoffComment.id))
        ).all()
    )


def last_notice(
    session: Session, *, stage_id: int, organisation: str | None, kinds: Sequence[str]
) -> SignoffNotice | None:
    query = select(SignoffNotice).where(
        SignoffNotice.stage_id == stage_id, col(SignoffNotice.kind).in_(list(kinds))
    )
    if organisation is None:
        query = query.where(col(SignoffNotice.organisation).is_(None))
    else:
        query = query.where(SignoffNotice.organisation == organisation)
    return session.exec(query.order_by(col(SignoffNotice.at).desc())).first()


def stages_awaiting_signoff(session: Session) -> list[Stage]:
    """Stages with sign-off that have not been drafted yet, in running or paused cycles."""
    open_states = [StageStatus.pending.value, StageStatus.approved.value]
    rows = session.exec(
        select(Stage)
        .join(Cycle, col(Cycle.id) == col(Stage.cycle_id))
        .where(
            col(Stage.status).in_(open_states),
            col(Cycle.status).in_([CycleStatus.running.value, CycleStatus.paused.value]),
        )
        .order_by(col(Stage.cycle_id), col(Stage.position))
    ).all()
    return [s for s in rows if s.signoff]


def next_revision(session: Session, *, stage_id: int, to_key: str) -> int:
    """A revision no message of this stage to this address has yet (for notices)."""
    found = session.exec(
        select(func.max(Message.revision)).where(
            Message.stage_id == stage_id, Message.to_key == to_key
        )
    ).one()
    return 1000 if found is None else max(int(found) + 1, 1000)
