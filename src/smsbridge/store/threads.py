"""Threads: the Slack thread of each (channel, sender, origin) conversation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsbridge.models import ThreadKey
from smsbridge.store.schema import threads


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    thread_ts: str
    last_sms_timestamp: int


class Threads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account: str, key: ThreadKey) -> ThreadEntry | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(threads.c.thread_ts, threads.c.last_sms_timestamp).where(
                        threads.c.account == account,
                        threads.c.channel == key.channel,
                        threads.c.sender == key.sender,
                        threads.c.origin == key.origin,
                    )
                )
            ).first()
            return None if row is None else ThreadEntry(row.thread_ts, row.last_sms_timestamp)

    async def remember(
        self, conn: AsyncConnection, account: str, key: ThreadKey, thread_ts: str, stamp: int
    ) -> None:
        """Inside the caller's transaction: `key`'s thread is `thread_ts`, last SMS at `stamp`."""
        where = and_(
            threads.c.account == account,
            threads.c.channel == key.channel,
            threads.c.sender == key.sender,
            threads.c.origin == key.origin,
        )
        current = (await conn.execute(select(threads).where(where))).first()
        if current is None:
            await conn.execute(
                threads.insert().values(
                    account=account,
                    channel=key.channel,
                    sender=key.sender,
                    origin=key.origin,
                    thread_ts=thread_ts,
                    last_sms_timestamp=stamp,
                )
            )
        else:
            await conn.execute(
                update(threads)
                .where(where)
                .values(
                    thread_ts=thread_ts, last_sms_timestamp=max(current.last_sms_timestamp, stamp)
                )
            )

    async def forget_idle(self, conn: AsyncConnection, account: str, before: float) -> int:
        """Inside the caller's transaction: drop threads whose last SMS is older than `before`."""
        idle = await conn.execute(
            delete(threads).where(
                threads.c.account == account, threads.c.last_sms_timestamp < before
            )
        )
        return idle.rowcount
