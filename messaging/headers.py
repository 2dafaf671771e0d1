"""Header values that can never inject headers.

Python 3.11.7 (on these machines) is open to CVE-2024-6923: the email package folds an
encoded-word such as ``=?UTF-8?Q?=0A?=`` back into a raw newline, so a Subject or display
name can smuggle in a ``Bcc:`` header. ``EmailMessage`` itself only rejects raw CR/LF, so every
user-supplied header value passes through ``clean_header`` first.
"""

from __future__ import annotations

import re
import unicodedata
from email.headerregistry import Address

_SPACES = re.compile(r"\s+")


def clean_header(value: str, *, limit: int = 200, keep: frozenset[str] = frozenset()) -> str:
    """Return ``value`` fit for a header: no control characters, no ``=?``, one line.

    Control and format characters (C0, C1, DEL, line and paragraph separators, bidi
    overrides) become spaces, except those in ``keep`` (the isolates and the right-to-left
    mark of a calendar text in Arabic); runs of white space collapse; the text is cut at
    ``limit``.
    """
    if (
        value.isascii()
        and value.isprintable()  # no control characters; no white space but the space
        and "=?" not in value
        and "  " not in value
        and value == value.strip()
    ):
        return value[:limit].rstrip()  # the common case, and what the rest would give
    chars = [
        " " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} and ch not in keep else ch
        for ch in value
    ]
    cleaned = "".join(chars)
    # Removing "=?" can create a new "=?" ("==??" -> "=?"): repeat until none is left.
    while "=?" in cleaned:
        cleaned = cleaned.replace("=?", "")
    cleaned = _SPACES.sub(" ", cleaned).strip()
    return cleaned[:limit].rstrip()


def address(name: str, email: str) -> Address:
    """A mailbox with a cleaned display name; the address itself is never encoded."""
    local, _, domain = email.rpartition("@")
    return Address(display_name=clean_header(name), username=local, domain=domain)
