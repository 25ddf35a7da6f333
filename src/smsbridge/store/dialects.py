"""Where SQLite and PostgreSQL are used differently, decided here once.

- INSERT … ON CONFLICT, which both spell alike but SQLAlchemy builds with each dialect's own
  class. The PostgreSQL dialect is imported only on PostgreSQL: on SQLite its import was about
  26 ms of `smsbridge run`'s start-up.
- The statements every post runs (the confirm, the next claim, the thread), run once per row
  of a group commit: on SQLite straight through the driver (`execute_many`); on PostgreSQL
  as one statement, alone, straight through the driver (`run_alone`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, TextClause
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


async def execute_many(
    conn: AsyncConnection, statement: TextClause, rows: Sequence[Mapping[str, Any]]
) -> int | None:
    """Run `statement` once for each of `rows`, in the caller's transaction: how many rows it
    changed in all, or None where the driver cannot count a run (asyncpg).

    The statement is SQL that both databases read alike, with `:name` parameters. On SQLite
    the run goes to the driver in one trip to its thread, where SQLAlchemy's adapter made three
    (a cursor, the run, its close) and built every row's parameters anew: 0.1 ms of CPU per SMS
    in the group confirm (BENCHMARKS.md). The transaction is still SQLAlchemy's: the driver
    opens it at the first change, as it does under SQLAlchemy, and the caller's commit ends it.
    """
    if conn.dialect.name != "sqlite":
        result = await conn.execute(statement, list(rows))  # one row: a plain execute
        counted = len(rows) == 1 or conn.dialect.supports_sane_multi_rowcount
        return result.rowcount if counted else None
    driver: Any = (await conn.get_raw_connection()).driver_connection  # aiosqlite's
    try:
        cursor = await driver.executemany(statement.text, rows)
    except sqlite3.Error as error:  # as SQLAlchemy would have raised it, values left out
        raise DBAPIError.instance(
            statement.text, None, error, sqlite3.Error, hide_parameters=True
        ) from None
    return int(cursor.rowcount)


@dataclass(frozen=True, slots=True)
class Alone:
    """A PostgreSQL statement compiled once for its driver: SQL with $n, and whose value each
    $n takes."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: TextClause, engine: AsyncEngine) -> Alone:
        compiled = statement.compile(dialect=engine.dialect)
        return cls(str(compiled), tuple(compiled.positiontup or ()))


async def run_alone(engine: AsyncEngine, statement: Alone, params: Mapping[str, Any]) -> list[Any]:
    """Run `statement` on PostgreSQL outside any transaction block, straight through asyncpg:
    the first column of each row it returns.

    A statement run alone is a transaction of its own, all or nothing, and costs one round
    trip. SQLAlchemy's way to the same (an AUTOCOMMIT connection) measured no faster than
    BEGIN, the statement and COMMIT; this, 25-30% faster drains (BENCHMARKS.md). Errors are
    raised as SQLAlchemy's DBAPIError, values left out. A connection is dropped from the pool
    unless the server itself refused the statement (and the connection is still open): one the
    server closed (a restart, a failover) fails in the driver in more ways than one, and must
    not be handed to the next caller.
    """
    import asyncpg

    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
        try:
            rows = await driver.fetch(statement.sql, *(params[name] for name in statement.names))
        except BaseException as error:
            if driver.is_closed() or not isinstance(error, asyncpg.PostgresError):
                await conn.invalidate()
            if isinstance(error, Exception):
                raise DBAPIError.instance(
                    statement.sql, None, error, Exception, hide_parameters=True
                ) from None
            raise  # cancelled: the caller is stopping
    return [row[0] for row in rows]
