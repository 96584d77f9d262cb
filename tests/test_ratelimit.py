"""lib.ratelimit: bounded log lines per source (LogLimiter), readings per device (TokenBuckets)."""
from __future__ import annotations

import pytest

from lib.ratelimit import LogLimiter, TokenBuckets


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


# ---- TokenBuckets: readings per device ------------------------------------------------

def test_bucket_starts_full_then_refills_at_the_rate():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=20, clock=clock)
    assert buckets.take("pi", 25) == 20  # the burst, no more
    assert buckets.take("pi", 1) == 0
    clock.now = 0.5
    assert buckets.take("pi", 10) == 5  # 0.5 s at 10/s
    clock.now = 100
    assert buckets.take("pi", 100) == 20  # never more than the burst, however long it rested


def test_all_or_nothing():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, clock=clock)
    assert buckets.take("pi", 6, partial=False) == 6
    assert buckets.take("pi", 6, partial=False) == 0  # 4 held: none taken
    assert buckets.take("pi", 4, partial=False) == 4


@pytest.mark.parametrize("held, wanted, expected", [(0, 5, 0.5), (3, 5, 0.2), (5, 5, 0.0), (0, 50, 2.0)])
def test_wait_says_when_the_tokens_are_there(held, wanted, expected):
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=20, clock=clock)
    buckets.take("pi", 20 - held)
    assert buckets.wait("pi", wanted) == pytest.approx(expected)  # at most the burst is waited for
    clock.now += expected
    assert buckets.take("pi", min(wanted, 20)) == min(wanted, 20)


def test_keys_have_their_own_buckets():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    assert buckets.take("a", 5) == 2 and buckets.take("b", 5) == 2
    assert buckets.wait("c", 2) == 0.0


def test_rate_zero_means_no_limit():
    buckets = TokenBuckets(rate=0, burst=1, clock=Clock())
    assert not buckets.enabled
    assert buckets.take("pi", 10 ** 6) == 10 ** 6 and buckets.wait("pi", 10 ** 6) == 0.0
    assert buckets._buckets == {}


def test_fractional_refill_is_not_lost():
    clock = Clock()
    buckets = TokenBuckets(rate=0.1, burst=1, clock=clock)
    assert buckets.take("pi", 1) == 1
    granted = 0
    for _ in range(10):  # 10 x 1 s at 0.1/s: exactly one token, float sums notwithstanding
        clock.now += 1
        granted += buckets.take("pi", 1)
    assert granted == 1


def test_memory_keeps_only_buckets_in_use():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, max_keys=100, clock=clock)
    for key in range(1000):
        clock.now += 0.01
        buckets.take(key, 10)  # each device empties its bucket
        assert len(buckets._buckets) <= 100
    clock.now += 0.5  # the older half has refilled meanwhile
    assert buckets.take("busy", 1) == 1 and len(buckets._buckets) <= 100


@pytest.mark.parametrize("rate, burst", [(-1, 10), (10, 0), (10, 0.5)])
def test_bad_parameters_are_refused(rate, burst):
    with pytest.raises(ValueError, match="token bucket"):
        TokenBuckets(rate=rate, burst=burst)
