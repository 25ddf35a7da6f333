"""Catch-up notices: which waiting SMS a channel's last "catching up" notice announced."""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.store.schema import catch_ups


class CatchUps:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def announced(self, account: str, channel: str, seq: int) -> bool:
        """Whether a notice already announced the ledger row `seq` (and so its catch-up)."""
        async with self._engine.connect() as conn:
            through = await conn.execute(
                select(catch_ups.c.through_seq).where(
                    catch_ups.c.account == account, catch_ups.c.channel == channel
                )
            )
            last = through.scalar_one_or_none()
            return last is not None and seq <= last

    async def record(self, account: str, channel: str, through_seq: int) -> None:
        """A notice announced every waiting row up to `through_seq`."""
        values = {"through_seq": through_seq, "announced_at": time.time()}
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                update(catch_ups)
                .where(catch_ups.c.account == account, catch_ups.c.channel == channel)
                .values(**values)
            )
            if not changed.rowcount:
                await conn.execute(
                    catch_ups.insert().values(account=account, channel=channel, **values)
                )
