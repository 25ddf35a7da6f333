"""Cursors: the `since` to send next per provider account, and when a poll last succeeded."""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsbridge.store.schema import cursors


class Cursors:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account: str) -> int | None:
        async with self._engine.connect() as conn:
            row = await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
            return row.scalar_one_or_none()

    async def advance(self, conn: AsyncConnection, account: str, since: int) -> None:
        """Move the cursor forward inside the caller's transaction; never backwards."""
        current = (
            await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
        ).scalar_one_or_none()
        if current is None:
            await conn.execute(
                cursors.insert().values(account=account, since=since, updated_at=time.time())
            )
        elif since > current:  # never backwards
            await conn.execute(
                update(cursors)
                .where(cursors.c.account == account)
                .values(since=since, updated_at=time.time())
            )

    async def record_poll(self, account: str) -> None:
        """A poll of `account` succeeded (seen by every replica's readiness and status)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(cursors).where(cursors.c.account == account).values(last_poll_at=time.time())
            )

    async def last_poll(self, account: str) -> float | None:
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(cursors.c.last_poll_at).where(cursors.c.account == account)
            )
            return row.scalar_one_or_none()

    async def since_in(self, conn: AsyncConnection, account: str) -> int | None:
        """The cursor, read inside the caller's transaction."""
        return (
            await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
        ).scalar_one_or_none()
