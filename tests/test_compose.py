"""Message shape and header safety (CVE-2024-6923 on this Python)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from messaging.compose import Outgoing, to_bytes
from messaging.headers import clean_header

ATTACK = "Hej =?UTF-8?Q?=0A?=Bcc: evil@attacker.example"


def outgoing(**changes: object) -> Outgoing:
    values: dict[str, object] = dict(
        sender_name="Samordningsförbundet",
        sender_email="s@coord.example",
        to_name="Anna Lindqvist",
        to_email="anna@fk.example",
        subject="Välkommen",
        text="Hej Anna\n",
        html="<p>Hej Anna</p>",
        message_id="<m.1@coord.example>",
        date=datetime(2027, 1, 20, 8, 0, tzinfo=UTC),
        category="email",
    )
    values.update(changes)
    return Outgoing(**values)  # type: ignore[arg-type]


def parse(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(data, policy=policy.default)


@pytest.mark.parametrize(
    "value",
    [
        ATTACK,
        "=?utf-8?b?Cg==?=Bcc: evil@attacker.example",
        "Hej\r\nBcc: evil@attacker.example",
        "Hej\u2028Bcc: evil@attacker.example",
        "==??UTF-8?Q?=0A?=Bcc: evil@attacker.example",
    ],
)
def test_clean_header_leaves_no_way_to_start_a_header(value: str) -> None:
    cleaned = clean_header(value)
    assert "=?" not in cleaned
    assert not any(ord(c) < 32 or c in "\u2028\u2029\x7f" for c in cleaned)


@pytest.mark.parametrize("field", ["subject", "to_name", "sender_name"])
def test_no_header_can_be_injected_through_names_or_subjects(field: str) -> None:
    data = to_bytes(outgoing(**{field: ATTACK}))
    msg = parse(data)
    assert msg["Bcc"] is None
    assert b"\nBcc:" not in data and b"\rBcc:" not in data
    assert [a.addr_spec for a in msg["To"].addresses] == ["anna@fk.example"]


def test_plain_message_is_alternative_text_and_html_with_the_headers_clients_need() -> None:
    msg = parse(to_bytes(outgoing(subject="Välkommen till Vår 2027 – hösten")))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == "Välkommen till Vår 2027 – hösten"
    assert msg["Message-ID"] == "<m.1@coord.example>"
    assert msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"].addresses[0].display_name == "Samordningsförbundet"
    assert msg["List-Unsubscribe"] is None  # an invitation is not a nudge


def test_reminders_say_how_to_stop() -> None:
    msg = parse(to_bytes(outgoing(category="reminder")))
    assert msg["List-Unsubscribe"] == "<mailto:s@coord.example?subject=unsubscribe>"


def test_calendar_message_has_the_imip_shape() -> None:
    ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    msg = parse(to_bytes(outgoing(ics=ics, ics_method="REQUEST", category="meeting")))
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = list(msg.iter_parts())
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar = list(alternative.iter_parts())[2]
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content() == ics
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content() == ics.encode()
