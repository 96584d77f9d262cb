"""Rate limits without I/O: how many log lines a noisy source may write."""
from __future__ import annotations

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
