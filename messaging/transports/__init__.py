"""Transports: one small contract (``Transport.send``), three implementations.

``smtp`` (aiosmtplib) for real delivery, ``maildir`` (the default) for a local copy of every
message, ``memory`` for unit tests of the layers above.
"""

from __future__ import annotations

from pathlib import Path

from messaging.transports.base import (
    Envelope,
    PermanentFailure,
    Receipt,
    TemporaryFailure,
    Transport,
    UncertainDelivery,
)

__all__ = [
    "Envelope",
    "PermanentFailure",
    "Receipt",
    "TemporaryFailure",
    "Transport",
    "UncertainDelivery",
    "make_transport",
]


def make_transport(*, smtp_url: str | None, mail_dir: Path, timeout: float = 30.0) -> Transport:
    """SMTP when a URL is given, else a Maildir tree under ``mail_dir``."""
    if smtp_url:
        from messaging.transports.smtp import SMTPTransport

        return SMTPTransport.from_url(smtp_url, timeout=timeout)
    from messaging.transports.maildir import MaildirTransport

    return MaildirTransport(mail_dir)
