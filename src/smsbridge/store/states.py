"""Rows per state, for the tables whose rows move through states (ledger, outbox)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine


async def count_states(
    engine: AsyncEngine, table: Table, account: str, states: type[StrEnum]
) -> dict[str, int]:
    """How many of `account`'s rows of `table` are in each state (0 for the empty ones)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.state, func.count())
            .where(table.c.account == account)
            .group_by(table.c.state)
        )
        found = {state: count for state, count in rows}
    return {state.value: found.get(state.value, 0) for state in states}
