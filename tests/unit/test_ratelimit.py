"""The send-rate limit, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from messaging.ratelimit import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def send_times(limit: RateLimit, clock: Clock, n: int) -> list[float]:
    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await limit.wait()
            times.append(round(clock.now, 6))
        return times

    return asyncio.run(go())


def test_per_second() -> None:
    clock = Clock()
    times = send_times(RateLimit(per_second=4, clock=clock, sleep=clock.sleep), clock, 9)
    assert times == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_per_minute() -> None:
    clock = Clock()
    times = send_times(RateLimit(per_minute=30, clock=clock, sleep=clock.sleep), clock, 65)
    assert times[:30] == [0] * 30
    assert times[30:60] == [60] * 30
    assert times[60:] == [120] * 5


def test_both_caps_at_once() -> None:
    clock = Clock()
    times = send_times(
        RateLimit(per_second=14, per_minute=30, clock=clock, sleep=clock.sleep), clock, 31
    )
    assert times[1] == pytest.approx(1 / 14, abs=1e-5)
    assert times[29] == pytest.approx(29 / 14, abs=1e-5)
    assert times[30] == pytest.approx(60.0, abs=1e-5)  # the 31st waits for the minute
    for i in range(1, 31):  # never more than 14 in any second
        assert times[i] - times[i - 1] >= 1 / 14 - 1e-5


def test_no_limit_does_not_wait() -> None:
    clock = Clock()
    assert send_times(RateLimit(clock=clock, sleep=clock.sleep), clock, 100) == [0] * 100
