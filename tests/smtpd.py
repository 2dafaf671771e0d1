"""A real SMTP server (aiosmtpd) that records what it receives, for tests.

Its handler can be told to misbehave for some recipients: refuse them with 4xx or 5xx
replies, drop the connection in the middle of DATA (nothing is stored), or answer DATA only
after a delay (the message is stored, the reply comes late). It notes when each message
arrived and how many connections were open at most, as a relay that caps senders counts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Recorder:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> "451 …" or "550 …"
    drop: set[str] = field(default_factory=set)  # close the connection during DATA
    slow: dict[str, float] = field(default_factory=dict)  # store, then reply after seconds
    delay: float = 0.0  # every DATA reply waits this long (a slow sink)
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each message
    open_now: int = 0  # connections open at this moment
    most_open: int = 0  # the most open at once

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        who = {r.lower() for r in envelope.rcpt_tos}
        if who & self.drop:
            server.transport.close()  # mid-DATA: the message is lost
            return "421 closing"
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or envelope.content),
            )
        )
        self.arrived.append(time.monotonic())
        late = max((self.slow.get(r, 0.0) for r in who), default=0.0)
        if late:
            await asyncio.sleep(late)  # stored already; the reply comes too late
        return "250 Message accepted for delivery"

    def parsed(self) -> list[EmailMessage]:
        return [
            cast(EmailMessage, message_from_bytes(data, policy=policy.default))
            for _, _, data in self.messages
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Counting(SMTP):
    """An SMTP session that counts itself among the recorder's open connections."""

    def connection_made(self, transport: Any) -> None:
        recorder = self.event_handler
        recorder.open_now += 1
        recorder.most_open = max(recorder.most_open, recorder.open_now)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.open_now -= 1
        super().connection_lost(error)


class _CountingController(Controller):
    def factory(self) -> SMTP:
        return _Counting(self.handler, **self.SMTP_kwargs)


class RecordingSMTP:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.controller = _CountingController(self.recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> RecordingSMTP:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
