"""A sliding-window limit per key (here: per Slack user). Pure but for the clock it is given."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one use by `key`; False when it would exceed the limit within the window."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            return False
        hits.append(now)
        return True

    def retry_in(self, key: str) -> float:
        """Seconds until `key` may ask again."""
        hits = self._hits.get(key)
        if not hits or len(hits) < self._limit:
            return 0.0
        return max(0.0, hits[0] + self._window - self._clock())
