"""The coordinator's mailbox over IMAP: ``samverkan inbox fetch`` (once), ``inbox watch``
(IDLE where the server has it, polling otherwise), and every tick when SAMVERKAN_IMAP_URL is
set.

Each message is read without marking it read (``BODY.PEEK[]``) and handed to
flows/people/mailbox.py in its own transaction, which also moves the folder's cursor (the
last UID read under the folder's UIDVALIDITY). A message it handled is then flagged on the
server (``\\Seen`` and the keyword ``$SamverkanHandled``), or moved to
SAMVERKAN_IMAP_MOVE_TO; nothing is ever deleted. A message it did not understand stays
unread, for the coordinator.

A restart handles nothing twice: UIDs up to the cursor are not fetched again; a message
handled but not yet flagged (the run stopped between the two) is flagged on the next run; and
if the server renumbers the folder (a new UIDVALIDITY), every message is read again but each
is known by the SHA-256 of its bytes.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine

from flows.people.mailbox import MailReport, Where, handle
from flows.settings import Settings
from store import queries
from store.db import session_scope
from store.errors import ConfigError, SamverkanError
from store.types import utcnow

if TYPE_CHECKING:
    from imapclient import IMAPClient

HANDLED = b"$SamverkanHandled"
BATCH = 50  # messages fetched per FETCH command
IDLE_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE before the server's 30-minute time-out


class MailboxError(SamverkanError):
    """The IMAP server could not be reached, refused the login, or broke off."""


@dataclass(frozen=True)
class ImapAddress:
    tls: bool  # imaps: TLS from the first byte; imap: STARTTLS, required
    host: str
    port: int
    user: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> ImapAddress:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("imap", "imaps"):
            raise ConfigError(
                f"SAMVERKAN_IMAP_URL: {parts.scheme or 'no'} scheme; use "
                "imaps://user@host/INBOX or imap://user@host/INBOX (STARTTLS)"
            )
        if parts.password is not None:
            raise ConfigError(
                "SAMVERKAN_IMAP_URL holds a password: put it in SAMVERKAN_IMAP_PASSWORD or "
                "SAMVERKAN_IMAP_PASSWORD_FILE instead, where it is not shown in a process list"
            )
        if not parts.hostname or not parts.username:
            raise ConfigError("SAMVERKAN_IMAP_URL needs a user and a host: imaps://user@host/INBOX")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"SAMVERKAN_IMAP_URL: bad port in {url!r}") from None
        tls = parts.scheme == "imaps"
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(
            tls, parts.hostname, port or (993 if tls else 143), unquote(parts.username), folder
        )

    @property
    def key(self) -> str:
        """How the store names this folder (its cursor, the messages read from it)."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


def _password(settings: Settings) -> str:
    if settings.imap_password is not None:
        return settings.imap_password.get_secret_value()
    if settings.imap_password_file is not None:
        try:
            return settings.imap_password_file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"SAMVERKAN_IMAP_PASSWORD_FILE: cannot read {settings.imap_password_file} "
                f"({exc.strerror or exc})"
            ) from None
    raise ConfigError(
        "set SAMVERKAN_IMAP_PASSWORD or SAMVERKAN_IMAP_PASSWORD_FILE: the password of the "
        "IMAP account (never on the command line)"
    )


def _context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.imap_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.imap_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"SAMVERKAN_IMAP_CA_FILE: cannot load {settings.imap_ca_file} ({exc})"
            ) from None
    return context


# What the network, TLS and the IMAP library raise when a server is gone or says no.
def _failures() -> tuple[type[BaseException], ...]:
    from imapclient.exceptions import IMAPClientError

    return (OSError, ssl.SSLError, socket.timeout, IMAPClientError, EOFError)


@contextmanager
def connected(settings: Settings, address: ImapAddress) -> Iterator[IMAPClient]:
    """A logged-in client with the folder selected; every failure a one-line MailboxError."""
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError

    password = _password(settings)
    context = _context(settings)
    where = f"{address.host}:{address.port}"
    try:
        client = IMAPClient(
            address.host, port=address.port, ssl=address.tls, ssl_context=context, timeout=30
        )
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(
            f"IMAP {where}: its certificate is not trusted ({exc.verify_message}); "
            "SAMVERKAN_IMAP_CA_FILE names certificates to trust"
        ) from None
    except _failures() as exc:
        raise MailboxError(f"IMAP {where}: cannot connect ({_one_line(exc)})") from None
    try:
        if not address.tls:
            if not client.has_capability("STARTTLS"):
                raise MailboxError(
                    f"IMAP {where} offers no STARTTLS, and samverkan sends no password in the "
                    "clear: use imaps:// or a server with STARTTLS"
                )
            try:
                client.starttls(context)
            except ssl.SSLCertVerificationError as exc:
                raise MailboxError(
                    f"IMAP {where}: its certificate is not trusted ({exc.verify_message}); "
                    "SAMVERKAN_IMAP_CA_FILE names certificates to trust"
                ) from None
        try:
            client.login(address.user, password)
        except LoginError:
            raise MailboxError(
                f"IMAP {where}: the server refused the login of {address.user}"
            ) from None
        if settings.imap_move_to and not client.has_capability("MOVE"):
            raise MailboxError(
                f"IMAP {where} cannot MOVE messages: unset SAMVERKAN_IMAP_MOVE_TO to flag "
                "handled messages in place"
            )
        if settings.imap_move_to and not client.folder_exists(settings.imap_move_to):
            raise MailboxError(
                f"IMAP {where} has no folder {settings.imap_move_to} (SAMVERKAN_IMAP_MOVE_TO): "
                "create it, or unset it to flag handled messages in place"
            )
        try:
            client.select_folder(address.folder)
        except _failures() as exc:
            raise MailboxError(
                f"IMAP {where}: cannot open the folder {address.folder} ({_one_line(exc)})"
            ) from None
        yield client
    except MailboxError:
        raise
    except _failures() as exc:
        raise MailboxError(f"IMAP {where}: the connection broke off ({_one_line(exc)})") from None
    finally:
        with suppress(Exception):  # already gone: nothing left to tell
            client.logout()


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())[:200] or type(exc).__name__


def _mark(client: IMAPClient, settings: Settings, uids: list[int]) -> None:
    """Flag handled messages (or move them to the coordinator's folder); never delete."""
    if not uids:
        return
    if settings.imap_move_to:
        client.add_flags(uids, [b"\\Seen", HANDLED])
        client.move(uids, settings.imap_move_to)
    else:
        client.add_flags(uids, [b"\\Seen", HANDLED])


def read_folder(
    client: IMAPClient,
    engine: Engine,
    settings: Settings,
    address: ImapAddress,
    *,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> MailReport:
    """Read every message of the selected folder not read before; see the module's text."""
    report = MailReport(unit="message")
    # UIDVALIDITY as SELECT gives it (RFC 3501 6.3.1); selecting again also sees new mail.
    selected = client.select_folder(address.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    mailbox = address.key
    with session_scope(engine) as session:
        cursor = queries.imap_cursor(session, mailbox=mailbox)
        start = 1
        if cursor is not None and cursor.uidvalidity == uidvalidity:
            start = cursor.last_uid + 1
        elif cursor is not None:
            report.problems.append(
                f"{address.folder}: the server renumbered the folder (UIDVALIDITY "
                f"{cursor.uidvalidity} -> {uidvalidity}); every message is read again, and "
                "those handled before are known by their content"
            )
        pending = queries.unflagged_uids(session, mailbox=mailbox, uidvalidity=uidvalidity)
    if pending:  # handled by a run that stopped before it could flag them
        _mark(client, settings, pending)
        with session_scope(engine) as session:
            queries.mark_flagged(session, mailbox=mailbox, uidvalidity=uidvalidity, uids=pending)
    # "N:*" always matches the last message, even when its UID is below N (RFC 3501 6.4.8).
    uids = sorted(u for u in client.search(["UID", f"{start}:*"]) if u >= start)
    for first in range(0, len(uids), BATCH):
        batch = uids[first : first + BATCH]
        fetched = client.fetch(batch, [b"BODY.PEEK[]"])
        for uid in batch:
            data = fetched.get(uid, {}).get(b"BODY[]")
            report.files += 1
            name = f"{address.folder} UID {uid}"
            where = Where(name, mailbox, uidvalidity, uid)
            handled = _one(engine, settings, where, data, report, now)
            if handled:
                _mark(client, settings, [uid])
                with session_scope(engine) as session:
                    queries.mark_flagged(
                        session, mailbox=mailbox, uidvalidity=uidvalidity, uids=[uid]
                    )
        if progress is not None:
            progress(min(first + BATCH, len(uids)), len(uids))
    return report


def _one(
    engine: Engine,
    settings: Settings,
    where: Where,
    data: object,
    report: MailReport,
    now: datetime,
) -> bool:
    """Handle one message and move the cursor past it, in one transaction. A message that
    fails in a way nobody foresaw is one line of the report and is passed over (left unread),
    so that it cannot stop every later reading at the same place; only a lost database
    connection stops the reading, with the cursor before the message, for the next run."""
    from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

    mailbox, uidvalidity, uid = where.source, where.uidvalidity or 0, where.uid or 0
    try:
        with session_scope(engine) as session:
            handled = False
            if isinstance(data, bytes):
                handled = handle(
                    session,
                    where,
                    data,
                    report,
                    now=now,
                    soft_bounce_limit=settings.soft_bounce_limit,
                )
            else:
                report.problems.append(f"{where.name}: the server sent no body")
            queries.move_imap_cursor(
                session, mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid, at=now
            )
            return handled
    except (OperationalError, InterfaceError):
        raise
    except IntegrityError:
        # Another reader (a tick beside `inbox watch`) handled the same message just now.
        report.already.append(where.name)
        handled = True
    except Exception as exc:
        report.problems.append(
            f"{where.name}: could not be handled ({type(exc).__name__}: {_one_line(exc)}); "
            "left for the coordinator"
        )
        handled = False
    with session_scope(engine) as session:
        queries.move_imap_cursor(
            session, mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid, at=now
        )
    return handled


def fetch(
    engine: Engine,
    settings: Settings,
    *,
    url: str | None = None,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MailReport:
    """Read the mailbox once (``samverkan inbox fetch``, and each tick)."""
    address = ImapAddress.parse(url or settings.imap_url or "")
    with connected(settings, address) as client:
        return read_folder(
            client, engine, settings, address, now=now or utcnow(), progress=progress
        )


def watch(
    engine: Engine,
    settings: Settings,
    *,
    url: str | None = None,
    say: Callable[[str], None],
    rounds: int | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> None:
    """Read the mailbox, then wait for new mail (IDLE, or every SAMVERKAN_IMAP_POLL_SECONDS)
    and read again, until interrupted. A broken connection is said in one line and opened
    again after a pause that doubles up to five minutes. ``rounds`` stops it (tests)."""
    address = ImapAddress.parse(url or settings.imap_url or "")
    pause = 5.0
    done = 0
    while rounds is None or done < rounds:
        try:
            with connected(settings, address) as client:
                pause = 5.0
                idle = client.has_capability("IDLE")
                say(
                    f"watching {address.key} "
                    + ("(IDLE)" if idle else f"(every {settings.imap_poll_seconds:g} s)")
                )
                while rounds is None or done < rounds:
                    report = read_folder(client, engine, settings, address, now=utcnow())
                    done += 1
                    if report.files:
                        for line in report.lines():
                            say(line)
                    if rounds is not None and done >= rounds:
                        return
                    if idle:
                        client.idle()
                        try:
                            client.idle_check(timeout=IDLE_SECONDS)
                        finally:
                            client.idle_done()
                    else:
                        sleep(settings.imap_poll_seconds)
        except MailboxError as exc:
            say(f"error: {exc}; trying again in {pause:g} s")
            sleep(pause)
            pause = min(pause * 2, 300.0)
