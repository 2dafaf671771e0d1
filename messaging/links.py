"""Personal links: a token per participant, stage and purpose, stored only as a hash.

The token is an HMAC-SHA256 of (purpose, stage, participant) under a secret key that is not
in the database, so the follow-up email and its reminder carry the same link, and the
database holds only the token's SHA-256. Rendered messages carry a placeholder
(``SVLINK…X``, letters and digits only, so Markdown, HTML and quoted-printable leave it
alone); the real token is put in only when the message is handed to the transport.

The ``unsubscribe`` link of every message to a participant is not in its text but in its
``List-Unsubscribe`` header (RFC 8058), made with ``token_for`` from the message's own stage
and participant when it is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

PURPOSES = ("answers", "rsvp", "unsubscribe")
PATHS = {"answers": "a", "rsvp": "r", "unsubscribe": "u"}  # where each is served
MARK = "SVLINK"  # every placeholder starts with it
_PATTERN = re.compile(r"SVLINK(ANSWERS|RSVP)S(\d+)X")


def placeholder(purpose: str, stage_id: int) -> str:
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    return f"SVLINK{purpose.upper()}S{stage_id}X"


def token_for(key: bytes, purpose: str, stage_id: int, participant_id: int) -> str:
    """256 bits, URL-safe: the same for the same participant, stage and purpose."""
    digest = hmac.new(key, f"{purpose}:{stage_id}:{participant_id}".encode(), "sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def url(base: str, purpose: str, token: str) -> str:
    return f"{base.rstrip('/')}/{PATHS[purpose]}/{token}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fill(text: str, key: bytes, participant_id: int) -> str:
    """Replace the placeholders with the participant's real tokens."""
    return _PATTERN.sub(
        lambda m: token_for(key, m.group(1).lower(), int(m.group(2)), participant_id), text
    )


def hide(text: str) -> str:
    """For previews: show where a personal link goes without making one."""
    return _PATTERN.sub("<personal-link>", text)
