"""Assemble one participant's message as bytes ready for any transport.

Shape (see ../shared/MAIL-AND-CALENDAR.md): a plain message is ``multipart/alternative``
(text, HTML); a calendar message is ``multipart/mixed`` holding that alternative with a third
``text/calendar; method=…`` part, plus the same calendar as an ``invite.ics`` attachment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from messaging.headers import address, clean_header

# Categories that are periodic nudges rather than one-off invitations: they say how to stop.
NUDGES = frozenset({"reminder", "followup"})


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


def build_message(out: Outgoing) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = address(out.sender_name, out.sender_email)
    msg["To"] = address(out.to_name, out.to_email)
    msg["Subject"] = clean_header(out.subject, limit=250)
    msg["Date"] = format_datetime(out.date)
    msg["Message-ID"] = out.message_id
    msg["Auto-Submitted"] = "auto-generated"
    if out.category in NUDGES:
        # No web link yet: unsubscribing reaches the coordinator, who removes the person.
        msg["List-Unsubscribe"] = f"<mailto:{out.sender_email}?subject=unsubscribe>"
    msg.set_content(out.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(out.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if out.ics:
        method = (out.ics_method or "REQUEST").upper()
        msg.add_alternative(
            out.ics,
            subtype="calendar",
            charset="utf-8",
            cte="base64",
            params={"method": method},
        )
        msg.add_attachment(
            out.ics.encode("utf-8"),
            maintype="application",
            subtype="ics",
            filename="invite.ics",
        )
    if out.attachment is not None:
        msg.add_attachment(
            out.attachment.encode("utf-8"),
            maintype="text",
            subtype="html",
            filename=out.attachment_name or "attachment.html",
        )
    return msg


def to_bytes(out: Outgoing) -> bytes:
    """The message flattened with CRLF line ends, as SMTP and Maildir readers expect."""
    return build_message(out).as_bytes(policy=policy.SMTP)
