"""Leases: which replica polls (and posts for) each provider account, until when.

Expiry is measured on the database's clock, so replicas whose clocks disagree still agree on
who holds a lease. The clock is the one dialect-specific piece here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.store.dialects import conflict_insert
from smsbridge.store.schema import leases


class Leases:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _db_now(self) -> Any:
        """The database's clock in epoch seconds: one clock for every replica, no skew."""
        if self._engine.dialect.name == "postgresql":
            return func.extract("epoch", func.clock_timestamp())
        return (func.julianday("now") - 2440587.5) * 86400.0

    async def acquire(self, account: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease on `account` for `ttl` seconds; False if another holds it."""
        async with self._engine.begin() as conn:
            now = float((await conn.execute(select(self._db_now()))).scalar_one())
            await conn.execute(
                conflict_insert(self._engine)(leases)
                .values(account=account, holder=holder, expires_at=now + ttl)
                .on_conflict_do_nothing(index_elements=["account"])
            )
            result = await conn.execute(
                update(leases)
                .where(
                    leases.c.account == account,
                    or_(leases.c.holder == holder, leases.c.expires_at < now),
                )
                .values(holder=holder, expires_at=now + ttl)
            )
            return result.rowcount == 1

    async def release(self, account: str, holder: str) -> None:
        """Give the lease up now, so another replica takes over at once."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(leases)
                .where(leases.c.account == account, leases.c.holder == holder)
                .values(expires_at=0.0)
            )

    async def holder(self, account: str) -> str | None:
        """Who holds the lease on `account` now, if anyone."""
        async with self._engine.connect() as conn:
            now = float((await conn.execute(select(self._db_now()))).scalar_one())
            row = await conn.execute(
                select(leases.c.holder).where(
                    leases.c.account == account, leases.c.expires_at >= now
                )
            )
            return row.scalar_one_or_none()
