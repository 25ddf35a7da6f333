"""Soon: run an async job in the background when asked, once for any number of asks.

Asks that come while the job runs make it run once more afterwards, never twice at once. So a
burst of a hundred pushes costs the follow-up work (wake the delivery workers, wake the other
replicas) two runs instead of a hundred, and none of it delays the push's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Soon:
    def __init__(self, job: Callable[[], Awaitable[None]], name: str) -> None:
        self._job = job
        self._name = name
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        """Ask for a run; returns at once."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def settled(self) -> None:
        """Wait until no run is pending."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while self._again:
            self._again = False
            try:
                await self._job()
            except Exception:  # a bug or a lost database: the next ask or poll tries again
                log.exception("%s failed", self._name)
