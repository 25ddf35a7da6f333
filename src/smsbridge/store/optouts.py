"""Opt-outs: numbers that asked (STOP) to get no more SMS from one of our lines."""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.store.dialects import conflict_insert
from smsbridge.store.schema import optouts


class OptOuts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def set(self, account: str, line: str | None, number: str, *, out: bool) -> None:
        """Record that `number` opted out of (or back in to) SMS from `line`."""
        async with self._engine.begin() as conn:
            if not out:
                await conn.execute(
                    delete(optouts).where(
                        optouts.c.account == account,
                        optouts.c.line == (line or ""),
                        optouts.c.number == number,
                    )
                )
                return
            await conn.execute(
                conflict_insert(self._engine)(optouts)
                .values(account=account, line=line or "", number=number, opted_out_at=time.time())
                .on_conflict_do_nothing(index_elements=["account", "line", "number"])
            )

    async def is_out(self, account: str, line: str | None, number: str) -> bool:
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(optouts.c.number).where(
                    optouts.c.account == account,
                    optouts.c.line == (line or ""),
                    optouts.c.number == number,
                )
            )
            return row.first() is not None
