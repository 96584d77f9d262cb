"""Rate limits without I/O: how many log lines a noisy source may write, how many readings a device may send."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable


@dataclass
class _Window:
    start: float
    used: int = 0
    suppressed: int = 0


@dataclass
class LogLimiter:
    """Allow `burst` lines per `interval` seconds for each key; count what is suppressed.

    `allow(key)` returns None when the line must be dropped, else the number of lines
    suppressed for that key since the last one allowed (to be said in the line).
    """

    burst: int = 5
    interval: float = 10.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _windows: dict[Hashable, _Window] = field(default_factory=dict)

    def allow(self, key: Hashable) -> int | None:
        """Count a line for `key`: None to drop it, else how many were dropped before it."""
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window.start >= self.interval:
            suppressed = window.suppressed if window else 0
            if window is None and len(self._windows) >= self.max_keys:
                self._forget(now)
            window = self._windows[key] = _Window(now)
            window.suppressed = 0
            window.used = 1
            return suppressed
        if window.used < self.burst:
            window.used += 1
            suppressed, window.suppressed = window.suppressed, 0
            return suppressed
        window.suppressed += 1
        return None

    def _forget(self, now: float) -> None:
        """Drop expired windows so many keys (addresses) cannot grow memory without bound."""
        for key in [k for k, w in self._windows.items() if now - w.start >= self.interval]:
            del self._windows[key]
        if len(self._windows) >= self.max_keys:
            self._windows.clear()


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class TokenBuckets:
    """A token bucket per key: `rate` tokens a second, holding at most `burst`; rate 0 = no limit.

    `take(key, n)` grants up to n tokens (readings of a device) and says how many; `wait(key, n)`
    how many seconds until n would be granted. A bucket that has refilled is forgotten, since a
    missing bucket is a full one: memory follows the keys that are being limited right now.
    """

    rate: float
    burst: float
    max_keys: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[Hashable, _Bucket] = field(default_factory=dict)
    # gunicorn's threads share a worker's buckets: a grant is one read-modify-write.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.rate < 0 or (self.rate and self.burst < 1):
            raise ValueError(f"a token bucket needs rate >= 0 and burst >= 1, got {self.rate}, {self.burst}")

    @property
    def enabled(self) -> bool:
        """False when rate is 0: everything is granted."""
        return self.rate > 0

    def take(self, key: Hashable, n: int, partial: bool = True) -> int:
        """Grant min(n, tokens held) tokens (all or none when not `partial`); return how many."""
        if not self.enabled or n <= 0:
            return max(n, 0)
        with self._lock:
            bucket = self._refill(key, self.clock())
            granted = min(n, int(bucket.tokens + 1e-9))  # 0.1 * 10 s is 0.999...: still 1
            if not partial and granted < n:
                granted = 0
            bucket.tokens -= granted
        return granted

    def wait(self, key: Hashable, n: int) -> float:
        """Seconds until `n` tokens (at most `burst`) are held for `key`; 0 when they are now."""
        if not self.enabled:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            held = min(self.burst, bucket.tokens + (self.clock() - bucket.stamp) * self.rate)
            return max(0.0, (min(n, self.burst) - held) / self.rate)

    def _refill(self, key: Hashable, now: float) -> _Bucket:
        """The key's bucket brought up to `now` (made full when new)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            return bucket
        bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)
        bucket.stamp = now
        return bucket

    def _forget(self, now: float) -> None:
        """Drop full buckets (a new one is full too); if all are busy, start everyone afresh."""
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.stamp) * self.rate >= self.burst]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()
