"""Personal links: only the hash of each link's token is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from store.models import AccessToken


def access_token(session: Session, *, token_hash: str, purpose: str) -> AccessToken | None:
    """The personal link with this hash, made for ``purpose``."""
    return session.exec(
        select(AccessToken).where(
            AccessToken.token_hash == token_hash, AccessToken.purpose == purpose
        )
    ).first()


def participants_with_token(
    session: Session, *, purpose: str, stage_id: int, participant_ids: Sequence[int]
) -> list[int]:
    """Which of ``participant_ids`` already have a link for ``purpose`` on the stage."""
    return list(
        session.exec(
            select(AccessToken.participant_id).where(
                AccessToken.stage_id == stage_id,
                AccessToken.purpose == purpose,
                col(AccessToken.participant_id).in_(participant_ids),
            )
        ).all()
    )


def insert_access_tokens(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Store many links' hashes in one statement (``rows`` hold every column)."""
    session.execute(insert(AccessToken.__table__), rows)  # type: ignore[attr-defined]
