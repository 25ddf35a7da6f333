"""StopSignal: one shutdown flag for the whole service, and sleeps that end when it is raised."""

from __future__ import annotations

import asyncio


class Stopped(Exception):
    """Raised from StopSignal.sleep when the service shuts down during the sleep."""


class StopSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or raise Stopped as soon as the service shuts down."""
        if self._event.is_set():
            raise Stopped
        try:
            await asyncio.wait_for(self._event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return
        raise Stopped
