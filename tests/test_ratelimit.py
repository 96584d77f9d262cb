"""lib.ratelimit: bounded log lines per source, with a count of what was suppressed."""
from __future__ import annotations

import pytest

from lib.ratelimit import LogLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_suppressed_then_counted():
    clock = Clock()
    limiter = LogLimiter(burst=3, interval=10, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [0, 0, 0, None, None]
    clock.now = 10
    assert limiter.allow("a") == 2  # the next line says how many were dropped
    assert limiter.allow("a") == 0


def test_keys_are_independent():
    limiter = LogLimiter(burst=1, interval=10, clock=Clock())
    assert limiter.allow("a") == 0 and limiter.allow("a") is None
    assert limiter.allow("b") == 0


@pytest.mark.parametrize("keys", [10, 1000])
def test_memory_is_bounded_by_max_keys(keys):
    clock = Clock()
    limiter = LogLimiter(burst=1, interval=1, max_keys=50, clock=clock)
    for i in range(keys):
        clock.now += 0.001
        assert limiter.allow(i) == 0
    assert len(limiter._windows) <= 50
