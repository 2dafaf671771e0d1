"""An in-memory transport that records what it is given, for unit tests of upper layers."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import cast

from messaging.transports.base import Envelope, Receipt


class MemoryTransport:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def send(self, envelope: Envelope) -> Receipt:
        self.sent.append(envelope)
        return Receipt(reply="250 recorded")

    def messages(self) -> list[EmailMessage]:
        return [
            cast(EmailMessage, message_from_bytes(e.data, policy=policy.default)) for e in self.sent
        ]
