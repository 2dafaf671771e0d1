"""Organisations and participants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from store.models import Organisation, Participant

Member = tuple[Participant, Organisation]


def get_or_create_organisation(session: Session, *, name: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
    return org


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
