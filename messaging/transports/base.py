"""The contract every transport fulfils."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    data: bytes
    message_id: str


@dataclass(frozen=True)
class Receipt:
    """What the receiving side said when it took the message."""

    reply: str


class DeliveryError(Exception):
    """A message could not be handed over."""


class TemporaryFailure(DeliveryError):
    """Worth trying again later: 4xx replies, dropped connections, time-outs."""


class PermanentFailure(DeliveryError):
    """Trying again will not help: 5xx replies, a refused address."""


class UncertainDelivery(DeliveryError):
    """The message went out but its receipt never came back (a time-out or a dropped
    connection after DATA): it may have arrived. Never retried on its own."""


class Transport(Protocol):
    """Hands messages over, one at a time, reusing whatever connection it holds."""

    async def __aenter__(self) -> Transport: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, envelope: Envelope) -> Receipt:
        """Deliver one message or raise TemporaryFailure / PermanentFailure."""
        ...
