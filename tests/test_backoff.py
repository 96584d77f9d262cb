"""Reconnect delays: exponential growth, a cap, jitter and reset."""
from __future__ import annotations

import math
import random

import pytest

from Pi_Sensor.backoff import Backoff


@pytest.mark.parametrize("first,cap", [(1.0, 60.0), (0.25, 5.0), (3.0, 3.0), (0.001, 1000.0)])
@pytest.mark.parametrize("seed", range(5))
def test_delays_stay_within_first_half_and_cap(first, cap, seed):
    """Every delay lies in [first/2, cap], however many attempts."""
    backoff = Backoff(first, cap, rng=random.Random(seed))
    delays = [backoff.next() for _ in range(200)]
    assert all(first / 2 <= d <= cap for d in delays)


@pytest.mark.parametrize("seed", range(10))
def test_each_delay_is_drawn_from_half_to_full_ceiling(seed):
    """Attempt n draws from [c/2, c] with c = min(cap, first * 2**n)."""
    first, cap = 0.5, 30.0
    backoff = Backoff(first, cap, rng=random.Random(seed))
    for attempt in range(80):
        ceiling = min(cap, first * 2 ** attempt)
        assert ceiling / 2 <= backoff.next() <= ceiling


def test_delays_grow_then_cap():
    """Averages double while below the cap, then stay at about 3/4 of the cap."""
    first, cap, draws = 1.0, 60.0, 2000
    means = []
    for attempt in range(12):
        total = 0.0
        for seed in range(draws):
            backoff = Backoff(first, cap, attempts=attempt, rng=random.Random(seed * 97 + attempt))
            total += backoff.next()
        means.append(total / draws)
    for attempt in range(5):  # ceilings 1, 2, 4, 8, 16, 32 are all below the cap
        assert means[attempt + 1] == pytest.approx(2 * means[attempt], rel=0.05)
    assert means[0] == pytest.approx(0.75 * first, rel=0.05)
    for mean in means[6:]:  # ceiling 64 and beyond: capped at 60
        assert mean == pytest.approx(0.75 * cap, rel=0.05)


def test_capped_delays_reach_close_to_cap():
    """Once capped, the draws cover [cap/2, cap] rather than a narrower band."""
    backoff = Backoff(1.0, 10.0, rng=random.Random(7))
    for _ in range(10):
        backoff.next()
    capped = [backoff.next() for _ in range(2000)]
    assert min(capped) < 5.2 and max(capped) > 9.8
    assert all(5.0 <= d <= 10.0 for d in capped)


def test_many_attempts_do_not_overflow():
    """Thousands of failures still give finite delays at the cap."""
    backoff = Backoff(1.0, 60.0, attempts=10_000, rng=random.Random(1))
    delay = backoff.next()
    assert math.isfinite(delay) and 30.0 <= delay <= 60.0


def test_reset_returns_to_first_delay_range():
    """After reset() the next delay is in [first/2, first] again."""
    backoff = Backoff(2.0, 60.0, rng=random.Random(3))
    for _ in range(10):
        backoff.next()
    assert backoff.next() >= 30.0
    backoff.reset()
    assert backoff.attempts == 0
    assert 1.0 <= backoff.next() <= 2.0
    assert 1.0 <= backoff.next() <= 4.0


def test_attempts_count_calls():
    """Each next() counts one attempt."""
    backoff = Backoff(1.0, 8.0, rng=random.Random(0))
    for expected in range(1, 6):
        backoff.next()
        assert backoff.attempts == expected


@pytest.mark.parametrize("first,cap", [
    (0.0, 60.0),
    (-1.0, 60.0),
    (10.0, 5.0),
    (float("nan"), 60.0),
    (1.0, float("nan")),
    (-5.0, -1.0),
])
def test_invalid_parameters_raise(first, cap):
    """first must be positive and not above cap."""
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(first, cap)


def test_jitter_varies():
    """Draws at the same attempt differ (a fleet does not retry in lockstep)."""
    delays = {Backoff(1.0, 60.0, attempts=4).next() for _ in range(50)}
    assert len(delays) > 40
    backoff = Backoff(1.0, 2.0, rng=random.Random(11))
    backoff.next()
    capped = [backoff.next() for _ in range(50)]
    assert len(set(capped)) > 40


def test_seeded_rng_is_reproducible():
    """The same seed gives the same sequence of delays."""
    a = Backoff(1.0, 60.0, rng=random.Random(42))
    b = Backoff(1.0, 60.0, rng=random.Random(42))
    assert [a.next() for _ in range(20)] == [b.next() for _ in range(20)]


def test_default_instances_do_not_share_an_rng():
    """Default instances draw from their own generators."""
    a, b = Backoff(), Backoff()
    assert a.rng is not b.rng
