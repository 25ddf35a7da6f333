"""Intake of pushed SMS: into the ledger, many per transaction when they come fast.

Each push waits for the commit that holds its SMS, so it is durable before the gateway hears
200. While one transaction is being written, the pushes that arrive meanwhile queue, and the
next transaction takes them all (group commit): a burst of a hundred pushes costs a handful of
transactions, not a hundred, and one slow commit never makes a queue of commits. The queue
holds one entry per push request still waiting, so the public port's connection limit bounds it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from smsbridge.models import InboundSms
from smsbridge.store.ledger import Ledger

MAX_BATCH = 200  # SMS per transaction: a bound on how long one commit holds the writer


@dataclass(frozen=True, slots=True)
class _Pushed:
    account: str
    sms: InboundSms
    channel: str | None
    stored: asyncio.Future[bool]


class PushIntake:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._queue: list[_Pushed] = []
        self._writer: asyncio.Task[None] | None = None

    async def store(self, account: str, sms: InboundSms, channel: str | None) -> bool:
        """Once the SMS is committed: True if it was new. Raises what the database raised."""
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pushed(account, sms, channel, stored))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="push intake")
        return await stored

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                news = await self._ledger.ingest_pushed_many(
                    [(item.account, item.sms, item.channel) for item in batch]
                )
            except BaseException as error:  # each push answers for itself (503, or a stop)
                for item in batch:
                    if not item.stored.done():
                        item.stored.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for item, new in zip(batch, news, strict=True):
                if not item.stored.done():
                    item.stored.set_result(new)
