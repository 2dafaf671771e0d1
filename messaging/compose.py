"""Assemble one participant's message as bytes ready for any transport.

Shape (the one Outlook, Gmail and Apple Mail accept as an invitation): a plain message is
``multipart/alternative`` (text, HTML); a calendar message is ``multipart/mixed`` holding that
alternative with a third ``text/calendar; method=…`` part, plus the same calendar as an
``invite.ics`` attachment.

The shape is fixed, so the message is written directly rather than through ``EmailMessage``:
building and flattening an ``EmailMessage`` cost about 2.3 ms a message here, most of the
CPU of a whole stage, against some 60 µs for this writer (``make bench``). What the email
package did for us is done here and tested by reading every message back with it:

- headers: user text is cleaned first (``clean_header``: no control characters, no ``=?``,
  so CVE-2024-6923 cannot apply), then written as plain ASCII, a quoted string, or RFC 2047
  encoded-words (UTF-8, base64) when it is not ASCII; long lines are folded;
- bodies: text and HTML in quoted-printable (``binascii.b2a_qp``, CRLF line ends, lines of
  at most 76 characters), calendars and attachments in base64;
- list headers: a ``List-Id`` per cycle (RFC 2919) and, for a participant, a one-click
  ``List-Unsubscribe`` web link with ``List-Unsubscribe-Post`` (RFC 8058), which bulk-sender
  rules of the big mail providers ask for;
- boundaries start with ``=_``, which neither quoted-printable (it writes ``=`` as ``=3D``)
  nor base64 can produce, so no body can ever contain one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from messaging.headers import clean_header

# Categories that are periodic nudges rather than one-off invitations: they say how to stop.
NUDGES = frozenset({"reminder", "followup"})

# A display name made only of these can be written as it is (RFC 5322 atext and spaces).
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+\Z")
_UNSAFE_IN_ADDRESS = re.compile(r'[\x00-\x20<>"\x7f]')
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")  # RFC 5646, loosely
_WEB_URL = re.compile(r"https?://[!#-;=?-~]+\Z")  # printable ASCII without space, < and >
_LINE = 78  # the recommended longest header line (RFC 5322 §2.1.1)
_WORD_BYTES = 39  # UTF-8 bytes per encoded-word: "=?utf-8?b?" + 52 base64 + "?=" = 64 chars
CRLF = "\r\n"


class AddressError(ValueError):
    """An address that cannot be written in a plain (non-SMTPUTF8) message."""


@dataclass(frozen=True)
class Outgoing:
    """Everything needed to build one message; values travel from the outbox row."""

    sender_name: str
    sender_email: str
    to_name: str
    to_email: str
    subject: str
    text: str
    html: str
    message_id: str
    date: datetime
    category: str
    ics: str | None = None
    ics_method: str | None = None
    attachment_name: str | None = None  # an HTML document sent along, e.g. a report
    attachment: str | None = None
    language: str | None = None  # the recipient's, as Content-Language
    cycle_id: int | None = None  # for List-Id
    cycle_name: str = ""
    unsubscribe_url: str | None = None  # a personal one-click link (participants only)


def encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded-words (UTF-8, base64) for ``text``; a character is never split."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > _WORD_BYTES and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _fold(name: str, tokens: list[str]) -> str:
    """``Name: tokens…`` joined by spaces, folded before a token that would pass 78 chars."""
    lines, line = [], f"{name}:"
    for token in tokens:
        if len(line) + 1 + len(token) > _LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return CRLF.join(lines)


@lru_cache(maxsize=256)  # a stage's subject is the same for everyone of one language
def unstructured(name: str, value: str) -> str:
    """A header of free text (Subject), cleaned, encoded where it is not ASCII, folded."""
    value = clean_header(value, limit=250)
    if value.isascii():
        return _fold(name, value.split(" "))
    return _fold(name, encoded_words(value))


def addr_spec(email: str) -> str:
    """The address as written in headers and SMTP commands (an IDN domain in ASCII)."""
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"not an email address: {email!r}")
    if not local.isascii():
        raise AddressError(f"{email}: a non-ASCII mailbox name needs an SMTPUTF8 relay")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    spec = f"{local}@{domain}"
    if _UNSAFE_IN_ADDRESS.search(spec):
        raise AddressError(f"not an email address: {email!r}")
    return spec


def mailbox(name: str, display_name: str, email: str) -> str:
    """``Name: Display Name <addr>``; the display name cleaned, quoted or encoded, never the
    address."""
    return _with_phrase(name, display_name, f"<{addr_spec(email)}>")


@lru_cache(maxsize=64)  # the same for every message of a cycle
def list_id(cycle_id: int, cycle_name: str, sender_email: str) -> str:
    """``List-Id: "Cycle name" <cycle-ID.samverkan.DOMAIN>``, the sender's domain in ASCII,
    so that filters can tell one cycle's mail from another's."""
    domain = addr_spec(sender_email).rpartition("@")[2]
    return _with_phrase("List-Id", cycle_name, f"<cycle-{int(cycle_id)}.samverkan.{domain}>")


def _with_phrase(name: str, display_name: str, spec: str) -> str:
    phrase = clean_header(display_name)
    if not phrase:
        return f"{name}: {spec}"
    if phrase.isascii() and len(name) + len(phrase) + len(spec) + 5 <= _LINE:
        if _PLAIN_PHRASE.match(phrase):
            return f"{name}: {phrase} {spec}"
        quoted = phrase.replace("\\", "\\\\").replace('"', '\\"')
        return f'{name}: "{quoted}" {spec}'
    return _fold(name, [*encoded_words(phrase), spec])


@lru_cache(maxsize=16)
def _from(name: str, email: str) -> str:
    return mailbox("From", name, email)  # the same for every message of a sender


def _qp(text: str) -> str:
    """Text in quoted-printable with CRLF line ends, ending with a line end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    # Encoded with LF line ends (no CR is left to be encoded), which then become CRLF.
    return binascii.b2a_qp(lines.encode("utf-8"), istext=True).decode("ascii").replace("\n", CRLF)


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", CRLF)


def _part(content_type: str, encoding: str, body: str, *extra: str) -> str:
    head = [f"Content-Type: {content_type}", *extra, f"Content-Transfer-Encoding: {encoding}"]
    return CRLF.join(head) + CRLF + CRLF + body


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    """A multipart entity (its Content-Type line, a blank line, its parts)."""
    inner = "".join(f"--{boundary}{CRLF}{p}{CRLF}" for p in parts)
    # Each part ends with CRLF; the delimiter's own CRLF comes before the next "--".
    return (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"{CRLF}{CRLF}'
        f"{inner}--{boundary}--{CRLF}"
    )


def _filename(name: str | None, default: str) -> str:
    cleaned = _SAFE_FILENAME.sub("-", name or "").strip("-.")
    return cleaned[:100] or default


def to_bytes(out: Outgoing) -> bytes:
    """The message with CRLF line ends, as SMTP and Maildir readers expect.

    Raises ``AddressError`` for an address that cannot be written.
    """
    tag = hashlib.blake2s(out.message_id.encode("utf-8"), digest_size=8).hexdigest()
    headers = [
        _from(out.sender_name, out.sender_email),
        mailbox("To", out.to_name, out.to_email),
        unstructured("Subject", out.subject),
        f"Date: {format_datetime(out.date)}",
        f"Message-ID: {clean_header(out.message_id)}",
        "Auto-Submitted: auto-generated",
    ]
    if out.language and _LANGUAGE_TAG.match(out.language):
        headers.append(f"Content-Language: {out.language}")
    if out.cycle_id is not None:
        headers.append(list_id(out.cycle_id, out.cycle_name, out.sender_email))
    stops = []
    if out.unsubscribe_url is not None:
        if not _WEB_URL.match(out.unsubscribe_url):
            raise ValueError(f"not a web address for List-Unsubscribe: {out.unsubscribe_url!r}")
        stops.append(f"<{out.unsubscribe_url}>")
    if out.category in NUDGES:
        # Kept beside the web link for mail programs that only offer a mailto: it reaches
        # the coordinator, who can take the person off.
        stops.append(f"<mailto:{addr_spec(out.sender_email)}?subject=unsubscribe>")
    if stops:
        headers.append(_fold("List-Unsubscribe", [f"{s}," for s in stops[:-1]] + stops[-1:]))
    if out.unsubscribe_url is not None:
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    headers.append("MIME-Version: 1.0")
    alternatives = [
        _part('text/plain; charset="utf-8"', "quoted-printable", _qp(out.text)),
        _part('text/html; charset="utf-8"', "quoted-printable", _qp(out.html)),
    ]
    attachments = []
    if out.ics:
        method = (out.ics_method or "REQUEST").upper()
        if not method.isascii() or not method.isalpha():
            raise ValueError(f"not an iTIP method: {method!r}")
        ics = out.ics.encode("utf-8")
        alternatives.append(
            _part(f'text/calendar; charset="utf-8"; method={method}', "base64", _b64(ics))
        )
        attachments.append(
            _part(
                'application/ics; name="invite.ics"',
                "base64",
                _b64(ics),
                'Content-Disposition: attachment; filename="invite.ics"',
            )
        )
    if out.attachment is not None:
        filename = _filename(out.attachment_name, "attachment.html")
        attachments.append(
            _part(
                f'text/html; charset="utf-8"; name="{filename}"',
                "base64",
                _b64(out.attachment.encode("utf-8")),
                f'Content-Disposition: attachment; filename="{filename}"',
            )
        )
    body = _multipart("alternative", f"=_sv.a.{tag}", alternatives)
    if attachments:
        body = _multipart("mixed", f"=_sv.m.{tag}", [body, *attachments])
    return (CRLF.join(headers) + CRLF + body).encode("ascii")
