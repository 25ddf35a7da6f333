"""Group commit: many callers' writes in one transaction when they come fast.

Each caller waits for the commit that holds its item, so what it wrote is durable before it
goes on (a push is answered 200, a post is counted as made). While one transaction is being
written, the items that arrive meanwhile queue, and the next transaction takes them all: a burst
of a hundred costs a handful of transactions, not a hundred, and one slow commit never makes a
queue of commits. Callers are bounded elsewhere (the public port's connection limit, one
delivery worker per channel), so the queue is too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int,
        name: str,
    ) -> None:
        self._write_batch = write  # one transaction for the batch: a result per item, in order
        self._max_batch = max_batch  # a bound on how long one commit holds the writer
        self._name = name
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Once `item` is committed: its result. Raises what the database raised."""
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future[Result]:
        """Queue `item` and return at once: the future holds its result once committed, for a
        caller with other work to do meanwhile (it must await the future before relying on
        the write)."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=self._name)
        return done

    async def _write(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                results = await self._write_batch([item for item, _ in batch])
            except BaseException as error:  # each caller answers for itself (503, or a stop)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)
