"""INSERT … ON CONFLICT, which SQLite and PostgreSQL spell alike but SQLAlchemy builds with each
dialect's own class: the choice several tables make, made here once. The PostgreSQL dialect is
imported only on PostgreSQL: on SQLite its import was about 26 ms of `smsbridge run`'s start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

    ConflictInsert = PostgresInsert | SqliteInsert


def conflict_insert(engine: AsyncEngine) -> Callable[[Table], ConflictInsert]:
    """The `insert(table)` of `engine`'s dialect, the one with `on_conflict_do_*`."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
