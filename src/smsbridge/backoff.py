"""Capped exponential backoff with full jitter. Pure: the caller supplies randomness and sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before retry number `failures`: uniform in [base, min(cap, base * 2**failures)].

    Full jitter keeps several replicas (or channels) from retrying in lock-step; the floor of
    `base` keeps a retry from ever being immediate.
    """

    base: float
    cap: float
    rand: Callable[[], float] = field(default=random.random)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return float(self.base + (ceiling - self.base) * self.rand())

    def reset(self) -> None:
        self.failures = 0
