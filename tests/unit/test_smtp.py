"""The SMTP transport against a real aiosmtpd server started by the test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from messaging.compose import Outgoing, to_bytes
from messaging.transports import Envelope, PermanentFailure, TemporaryFailure, make_transport
from messaging.transports.smtp import SMTPTransport
from store.errors import ConfigError
from tests.smtpd import RecordingSMTP, free_port


def envelope(to: str = "anna@fk.example") -> Envelope:
    data = to_bytes(
        Outgoing(
            sender_name="S",
            sender_email="s@coord.example",
            to_name="Anna",
            to_email=to,
            subject="Hej",
            text="Hej\n",
            html="<p>Hej</p>",
            message_id="<m@coord.example>",
            date=datetime.now(UTC),
            category="email",
        )
    )
    return Envelope("s@coord.example", to, data, "<m@coord.example>")


async def send_all(transport: SMTPTransport, envelopes: list[Envelope]) -> list[object]:
    results: list[object] = []
    async with transport:
        for e in envelopes:
            try:
                results.append(await transport.send(e))
            except (TemporaryFailure, PermanentFailure) as exc:
                results.append(exc)
    return results


def test_messages_arrive_over_one_connection_with_their_envelope() -> None:
    with RecordingSMTP() as server:
        transport = SMTPTransport.from_url(server.url)
        receipts = asyncio.run(
            send_all(transport, [envelope("a@x.example"), envelope("b@x.example")])
        )
    assert [getattr(r, "reply", r) for r in receipts] == ["Message accepted for delivery"] * 2
    assert [(frm, to) for frm, to, _ in server.recorder.messages] == [
        ("s@coord.example", ["a@x.example"]),
        ("s@coord.example", ["b@x.example"]),
    ]
    assert server.recorder.parsed()[0]["Subject"] == "Hej"


def test_4xx_is_temporary_and_5xx_is_permanent_and_the_rest_still_go() -> None:
    with RecordingSMTP() as server:
        server.recorder.refuse = {
            "busy@x.example": "451 4.7.1 Try again later",
            "gone@x.example": "550 5.1.1 No such user",
        }
        transport = SMTPTransport.from_url(server.url)
        results = asyncio.run(
            send_all(
                transport,
                [envelope("busy@x.example"), envelope("gone@x.example"), envelope("ok@x.example")],
            )
        )
    assert isinstance(results[0], TemporaryFailure) and "451" in str(results[0])
    assert isinstance(results[1], PermanentFailure) and "550" in str(results[1])
    assert [to for _, to, _ in server.recorder.messages] == [["ok@x.example"]]


def test_no_server_is_a_temporary_failure() -> None:
    transport = SMTPTransport.from_url(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    [result] = asyncio.run(send_all(transport, [envelope()]))
    assert isinstance(result, TemporaryFailure)
    assert "cannot connect" in str(result)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:p%40ss@mail.example:587?starttls=true",
            dict(
                hostname="mail.example",
                port=587,
                username="user",
                password="p@ss",
                start_tls=True,
                use_tls=False,
            ),
        ),
        (
            "smtps://mail.example",
            dict(hostname="mail.example", port=465, use_tls=True, start_tls=None),
        ),
        ("smtp://mail.example", dict(port=25, start_tls=None, use_tls=False)),
    ],
)
def test_smtp_urls_are_understood(url: str, expected: dict[str, object]) -> None:
    transport = make_transport(smtp_url=url, mail_dir=None)  # type: ignore[arg-type]
    assert isinstance(transport, SMTPTransport)
    for key, value in expected.items():
        assert transport._kw[key] == value


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://mail.example", "must start with smtp://"),
        ("smtp://mail.example:abc", "port that is not a number"),
        ("smtp://mail.example?starttls=maybe", "starttls= takes true or false"),
    ],
)
def test_bad_smtp_urls_are_one_clear_error(url: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        SMTPTransport.from_url(url)
