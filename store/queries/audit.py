"""The audit log, and who is acting.

Who an entry names as its actor is set where a request comes in: the CLI is ``coordinator``
(the person at the terminal), the tick ``tick``, and the workspace the signed-in account
(``acting_as``), so that the functions of the application need not carry it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlmodel import Session, col, select

from store.models import AuditEntry

_ACTOR: ContextVar[str] = ContextVar("samverkan_actor", default="coordinator")


def actor() -> str:
    """Who the audit log names for what is done now."""
    return _ACTOR.get()


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Everything audited inside names ``name`` as its actor."""
    token = _ACTOR.set(name)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def audit(
    session: Session,
    *,
    cycle_id: int | None,
    action: str,
    stage_key: str | None = None,
    detail: str = "",
    reason: str | None = None,
    actor: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        cycle_id=cycle_id,
        action=action,
        stage_key=stage_key,
        detail=detail,
        reason=reason,
        actor=actor or _ACTOR.get(),
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
