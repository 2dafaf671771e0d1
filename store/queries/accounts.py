"""Workspace accounts, their sessions and the login throttle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, delete, func, select

from store.models import Account, LoginFailure, WebSession


def account_by_email(session: Session, *, email_key: str) -> Account | None:
    return session.exec(select(Account).where(Account.email_key == email_key)).first()


def list_accounts(session: Session) -> list[Account]:
    return list(session.exec(select(Account).order_by(col(Account.email_key))).all())


def count_accounts(session: Session, *, role: str | None = None) -> int:
    query = select(func.count()).select_from(Account)
    if role is not None:
        query = query.where(Account.role == role, col(Account.disabled).is_(False))
    return int(session.exec(query).one())


def session_by_token(session: Session, *, token_hash: str) -> WebSession | None:
    return session.exec(select(WebSession).where(WebSession.token_hash == token_hash)).first()


def end_sessions(session: Session, *, account_id: int, keep: int | None = None) -> int:
    """End every session of an account (but ``keep``); how many there were."""
    query = delete(WebSession).where(col(WebSession.account_id) == account_id)
    if keep is not None:
        query = query.where(col(WebSession.id) != keep)
    return int(session.exec(query).rowcount)


def end_session(session: Session, *, session_id: int) -> None:
    session.exec(delete(WebSession).where(col(WebSession.id) == session_id))


def end_expired_sessions(session: Session, *, now: datetime) -> None:
    session.exec(delete(WebSession).where(col(WebSession.expires_at) <= now))


def login_failures(
    session: Session, *, since: datetime, email_key: str, address: str
) -> tuple[int, int]:
    """Refused logins since a time: for this account, and from this address."""

    def count(where: Any) -> int:
        query = select(func.count()).select_from(LoginFailure)
        return int(session.exec(query.where(col(LoginFailure.at) >= since, where)).one())

    return count(col(LoginFailure.email_key) == email_key), count(
        col(LoginFailure.address) == address
    )


def record_login_failure(session: Session, *, email_key: str, address: str) -> LoginFailure:
    failure = LoginFailure(email_key=email_key, address=address)
    session.add(failure)
    return failure


def forget_login_failures(
    session: Session, *, email_key: str | None = None, before: datetime | None = None
) -> None:
    query = delete(LoginFailure)
    if email_key is not None:
        query = query.where(col(LoginFailure.email_key) == email_key)
    if before is not None:
        query = query.where(col(LoginFailure.at) < before)
    session.exec(query)
