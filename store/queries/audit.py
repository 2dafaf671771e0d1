"""The audit log."""

from __future__ import annotations

from sqlmodel import Session, col, select

from store.models import AuditEntry


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
