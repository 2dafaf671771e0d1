"""What a drain asks before it opens connections and before each message it sends.

Relays cap senders (14 a second, 30 a minute are caps seen in the wild); going over them
gets mail deferred or the account blocked, so the limit is kept before each send. Relays
also cap the connections a sender holds open at once.

``SendLimit`` is what the drain (messaging/outbox.py) is given. ``RateLimit`` keeps the caps
within one drain: its connections are the ones the drain was told to open, and the rate is
shared by them. A limit shared by several drains at once, in other processes or on other
machines, is another ``SendLimit`` (Prefect's global concurrency limits, in
flows/orchestration/limits.py); messaging knows nothing of it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class SendLimit(Protocol):
    def connections(self, wanted: int) -> AbstractAsyncContextManager[int]:
        """Held while the drain's connections may be open: how many it may open, at most
        ``wanted``. Never holds some while waiting for more, so two drains cannot each hold
        part and wait for the rest. 0 when others hold them all and none came free for a
        while: those drains send what is ready, and this one sends nothing."""
        ...

    async def wait(self) -> None:
        """Return when one more message may go."""
        ...


class RateLimit:
    def __init__(
        self,
        per_second: float | None = None,
        per_minute: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("per_second must be positive")
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_second, self.per_minute = per_second, per_minute
        self._clock, self._sleep = clock, sleep
        self._last: float | None = None
        self._window: deque[float] = deque()
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def connections(self, wanted: int) -> AsyncIterator[int]:
        """Within one drain, as many connections as it asks for."""
        yield wanted

    @property
    def active(self) -> bool:
        return self.per_second is not None or self.per_minute is not None

    async def wait(self) -> None:
        """Return when one more message may go."""
        if not self.active:
            return
        async with self._lock:
            now = self._clock()
            if self.per_second is not None and self._last is not None:
                ready = self._last + 1.0 / self.per_second
                if now < ready:
                    await self._sleep(ready - now)
                    now = max(self._clock(), ready)
            if self.per_minute is not None:
                while self._window and self._window[0] <= now - 60.0:
                    self._window.popleft()
                if len(self._window) >= self.per_minute:
                    ready = self._window[0] + 60.0
                    await self._sleep(ready - now)
                    now = max(self._clock(), ready)
                    self._window.popleft()
                self._window.append(now)
            self._last = now
