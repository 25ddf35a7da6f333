"""Limits per key, pure but for the clock they are given: a sliding window (uses per Slack
user) and a token bucket (posts per Slack channel)."""

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


class Pacer:
    """A token bucket per key (here: per Slack channel), kept as one time per key (GCRA).

    `interval` seconds per use in the long run, up to `burst` uses at once after a quiet spell.
    `reserve` books the next use and says how long to wait for it, so concurrent callers queue
    in order instead of all waking at once. An interval of 0 paces nothing.
    """

    def __init__(
        self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._tolerance = max(0, burst - 1) * interval  # how far ahead of the rate a burst may be
        self._clock = clock
        self._due: dict[str, float] = {}  # key -> when the bucket is full again (the "TAT")

    def reserve(self, key: str) -> float:
        """Book one use of `key`: the seconds to wait before it (0: go now)."""
        if not self._interval:
            return 0.0
        now = self._clock()
        due = max(self._due.get(key, now), now)
        self._due[key] = due + self._interval
        if len(self._due) > 10_000:  # keys whose bucket is full again hold nothing
            self._due = {k: v for k, v in self._due.items() if v > now}
        return max(0.0, due - self._tolerance - now)

    def spent(self, key: str, at: float | None = None) -> None:
        """The use booked last was counted by the other side no later than `at` (when its
        answer came). Counting it then rather than when it was sent keeps our bucket emptier
        than theirs, so network jitter can never make a use arrive before they have a token."""
        if self._interval:
            at = self._clock() if at is None else at
            self._due[key] = max(self._due.get(key, at), at + self._interval)
