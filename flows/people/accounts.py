"""Workspace accounts: who may sign in, with which role, and their sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
setting); a hash made with weaker parameters than today's is replaced at the next login. A
session is a random token in a cookie, of which only the SHA-256 is stored, with its own CSRF
token; it ends after ``IDLE`` without use, after ``LONGEST`` in all, at logout, and, for every
session of the account, when its password changes or it is disabled.

Login attempts are throttled in the store, so the limit holds across processes and restarts:
after ``PER_ACCOUNT`` refused attempts for one account within ``WINDOW`` that account takes no
more attempts until the window has moved on, and after ``PER_ADDRESS`` from one client address
that address takes none (against trying many accounts). Checking one's current password
before changing it counts the same way. An unknown address is checked against
a dummy hash, so the time taken does not tell which accounts exist.

Single sign-on (OIDC) can later sign an account in by ``Account.sso_subject``: everything
after "who is this" (roles, sessions, CSRF, the audit log) does not care how it was decided.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from flows.people.participants import normalise_email
from store import queries
from store.errors import InvalidInput, NotFound, StateError
from store.models import Account, AccountRole, WebSession, pk
from store.types import utcnow

IDLE = timedelta(hours=1)
LONGEST = timedelta(hours=12)
WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5
PER_ADDRESS = 20
# NIST SP 800-63B: at least 8 characters, and accept long passphrases. The upper bound keeps
# one login from costing more than hashing a page of text.
SHORTEST = 12
LONGEST_PASSWORD = 1024

_hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified against when the address names no account, so that both take the same time;
    made at the first login, not when the module is imported (a hash costs 0.2 s)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def email_key(email: str) -> str:
    """The address as accounts are looked up by (trimmed, lower-cased)."""
    return email.strip().lower()


def _account(session: Session, email: str) -> Account:
    account = queries.account_by_email(session, email_key=email_key(email))
    if account is None:
        raise NotFound(f"no account {email.strip()} (see: samverkan users list)")
    return account


def check_password(password: str) -> str:
    if len(password) < SHORTEST:
        raise InvalidInput(f"the password is too short: use at least {SHORTEST} characters")
    if len(password) > LONGEST_PASSWORD:
        raise InvalidInput(f"the password is too long: use at most {LONGEST_PASSWORD} characters")
    if password != password.strip("\r\n"):
        raise InvalidInput("the password ends in a line break")
    return password


def add_account(
    engine: Engine,
    *,
    email: str,
    role: str,
    organisation: str | None = None,
    password: str | None = None,
) -> Account:
    """Create an account; a signer needs the organisation it signs for."""
    try:
        address = normalise_email(email.strip())
    except EmailNotValidError as exc:
        raise InvalidInput(f"{email.strip()!r} is not an email address: {exc}") from None
    if role not in AccountRole.__members__:
        raise InvalidInput(f"unknown role {role!r}: use coordinator, signer or viewer")
    organisation = (organisation or "").strip() or None
    if role == AccountRole.signer and organisation is None:
        raise InvalidInput("a signer signs for an organisation: give --org ORGANISATION")
    if role != AccountRole.signer and organisation is not None:
        raise InvalidInput("only a signer belongs to an organisation: leave out --org")
    account = Account(
        email=address,
        email_key=email_key(address),
        role=AccountRole(role),
        organisation=organisation,
    )
    if password is not None:
        account.password_hash = _hasher.hash(check_password(password))
        account.password_changed_at = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        session.add(account)
        try:
            session.flush()
        except IntegrityError:
            raise StateError(f"there is already an account {address}") from None
        detail = f"{address} as {role}" + (f" of {organisation}" if organisation else "")
        queries.audit(session, cycle_id=None, action="account.add", detail=detail)
        session.commit()
    return account


def list_accounts(engine: Engine) -> list[Account]:
    with Session(engine, expire_on_commit=False) as session:
        return queries.list_accounts(session)


def set_password(
    engine: Engine, *, email: str, password: str, keep_session: int | None = None
) -> int:
    """Set an account's password and end its sessions (but ``keep_session``); how many."""
    check_password(password)
    with Session(engine) as session:
        account = _account(session, email)
        account.password_hash = _hasher.hash(password)
        account.password_changed_at = utcnow()
        session.add(account)
        ended = queries.end_sessions(session, account_id=pk(account), keep=keep_session)
        queries.forget_login_failures(session, email_key=account.email_key)
        queries.audit(session, cycle_id=None, action="account.password", detail=account.email)
        session.commit()
        return ended


def disable_account(engine: Engine, *, email: str) -> int:
    """Disable an account and end its sessions; how many it had."""
    with Session(engine) as session:
        account = _account(session, email)
        if account.disabled:
            return 0
        if (
            account.role == AccountRole.coordinator
            and queries.count_accounts(session, role=AccountRole.coordinator.value) == 1
        ):
            raise StateError(
                f"{account.email} is the only coordinator left; add another first "
                "(samverkan users add EMAIL --role coordinator)"
            )
        account.disabled = True
        session.add(account)
        ended = queries.end_sessions(session, account_id=pk(account))
        queries.audit(session, cycle_id=None, action="account.disable", detail=account.email)
        session.commit()
        return ended


# Logging in -------------------------------------------------------------------------------


@dataclass
class Login:
    outcome: Literal["ok", "refused", "throttled", "disabled"]
    account: Account | None = None
    token: str | None = None  # the new session's cookie value, when ok


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _attempt(engine: Engine, *, key: str, address: str) -> bool:
    """Count one attempt for the throttle before the password is checked; whether it may go
    on. Recorded and committed first, so that parallel attempts count each other (checking
    first would let a burst through), and with nothing held while Argon2 runs."""
    now = utcnow()
    with Session(engine) as session:
        queries.forget_login_failures(session, before=now - WINDOW)
        attempt = queries.record_login_failure(session, email_key=key, address=address)
        session.commit()
        by_account, by_address = queries.login_failures(
            session, since=now - WINDOW, email_key=key, address=address
        )
        allowed = by_account <= PER_ACCOUNT and by_address <= PER_ADDRESS
        if not allowed:
            # A refused try is not counted: the account opens again a window after the
            # last tried password, however long someone keeps knocking.
            session.delete(attempt)
            session.commit()
        return allowed


def _checked(engine: Engine, key: str, password: str) -> Account | None:
    """The account, if the password is its own (the same work whether it exists or not)."""
    dummy = _dummy()  # made before either branch: the first login costs the same for both
    with Session(engine, expire_on_commit=False) as session:
        account = queries.account_by_email(session, email_key=key)
    if account is None or not account.password_hash:
        _verify(dummy, password)
        return None
    return account if _verify(account.password_hash, password) else None


def check_password_of(engine: Engine, *, email: str, password: str, address: str) -> str:
    """ "ok", "refused" or "throttled": the signed-in account's own password, checked as a
    login is (before it may change it), so a left-open session cannot be used to guess it."""
    key = email_key(email)
    password = password[:LONGEST_PASSWORD]
    if not _attempt(engine, key=key, address=address):
        return "throttled"
    if _checked(engine, key, password) is None:
        return "refused"
    with Session(engine) as session:
        queries.forget_login_failures(session, email_key=key)
        session.commit()
    return "ok"


def log_in(engine: Engine, *, email: str, password: str, address: str) -> Login:
    """Check a login; on success start a new session (a login never reuses one)."""
    key = email_key(email)[:320]
    # Cut before anything else, so that a long password costs the same for every address.
    password = password[:LONGEST_PASSWORD]
    if not _attempt(engine, key=key, address=address):
        return Login("throttled")
    account = _checked(engine, key, password)
    if account is None:
        return Login("refused")
    if account.disabled:
        return Login("disabled", account)
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        if _hasher.check_needs_rehash(account.password_hash):
            account.password_hash = _hasher.hash(password)
            session.add(account)
        # A success clears the account's count (its own attempt included).
        queries.forget_login_failures(session, email_key=key)
        token = secrets.token_urlsafe(32)
        session.add(
            WebSession(
                token_hash=_hash(token),
                account_id=pk(account),
                csrf=secrets.token_urlsafe(32),
                expires_at=now + LONGEST,
            )
        )
        queries.end_expired_sessions(session, now=now - IDLE)
        with queries.acting_as(account.email):
            queries.audit(session, cycle_id=None, action="account.login", detail=account.email)
        session.commit()
        return Login("ok", account, token)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class SignedIn:
    account: Account
    session_id: int
    csrf: str


def signed_in(engine: Engine, token: str | None) -> SignedIn | None:
    """The session a cookie names, if it is still open; its idle time starts again."""
    if not token or len(token) > 100:
        return None
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        row = queries.session_by_token(session, token_hash=_hash(token))
        if row is None:
            return None
        if row.expires_at <= now or row.seen_at + IDLE <= now:
            queries.end_session(session, session_id=pk(row))
            session.commit()
            return None
        account = session.get(Account, row.account_id)
        if account is None:
            return None
        # Written at most once a minute: a page view is a read, not a write, on the store.
        if now - row.seen_at > timedelta(minutes=1):
            row.seen_at = now
            session.add(row)
            session.commit()
        return SignedIn(account, pk(row), row.csrf)


def log_out(engine: Engine, *, session_id: int, email: str) -> None:
    with Session(engine) as session:
        queries.end_session(session, session_id=session_id)
        with queries.acting_as(email):
            queries.audit(session, cycle_id=None, action="account.logout", detail=email)
        session.commit()
