"""A send-rate limit shared by every connection: at most N messages a second and M a minute.

Relays cap senders (14 a second, 30 a minute are caps seen in the wild); going over them
gets mail deferred or the account blocked, so the limit is kept before each send.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


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
