"""Reconnect delays: exponential with jitter, so a fleet does not reconnect in lockstep."""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from `first` up to `cap`, each drawn from [delay/2, delay]."""

    first: float = 1.0
    cap: float = 60.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"backoff needs 0 < first <= cap, got {self.first}, {self.cap}")

    def next(self) -> float:
        """The delay before the next attempt."""
        ceiling = min(self.cap, self.first * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from `first` (after a successful exchange)."""
        self.attempts = 0
