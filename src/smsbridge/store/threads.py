"""Threads: the Slack thread of each (channel, sender, origin) conversation."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsbridge.models import ThreadKey
from smsbridge.store.dialects import execute_many
from smsbridge.store.schema import threads


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    thread_ts: str
    last_sms_timestamp: int


# Threads remembered per process: the replica that holds an account's lease is the only one
# posting for it, so what it wrote stays true until it loses the lease (forget_cached).
CACHED_THREADS = 10_000


class Threads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: OrderedDict[tuple[str, ThreadKey], ThreadEntry] = OrderedDict()

    async def get(self, account: str, key: ThreadKey) -> ThreadEntry | None:
        cached = self._cache.get((account, key))
        if cached is not None:
            self._cache.move_to_end((account, key))
            return cached
        async with self._engine.connect() as conn:
            row = (await conn.execute(_GET, _key_params(account, key))).first()
        if row is None:  # not cached: another replica's sender may record it any moment
            return None
        entry = ThreadEntry(row.thread_ts, row.last_sms_timestamp)
        self._keep(account, key, entry)
        return entry

    async def remember_many(
        self, conn: AsyncConnection, account: str, entries: Sequence[tuple[ThreadKey, str, int]]
    ) -> list[ThreadEntry]:
        """Inside the caller's transaction: each (key, thread_ts, stamp): `key`'s thread is
        `thread_ts`, last SMS at `stamp` (or later, if the thread already had a later one).
        Returns the entries for `learned`, once the transaction has committed."""
        await execute_many(
            conn,
            _REMEMBER,
            [
                {**_key_params(account, key), "b_ts": thread_ts, "b_stamp": stamp}
                for key, thread_ts, stamp in entries
            ],
        )
        return [self._merged(account, key, thread_ts, stamp) for key, thread_ts, stamp in entries]

    def remember_all(
        self, account: str, entries: Sequence[tuple[ThreadKey, str, int]]
    ) -> tuple[dict[str, Any], list[ThreadEntry]]:
        """`remember_many` for PostgreSQL's one-statement group confirm: REMEMBER_ALL's
        parameters, and the entries for `learned` once it has committed.

        One row per thread, as running `_REMEMBER` for each entry in order would leave it
        (its last thread_ts, its latest stamp): one statement cannot change a row twice."""
        rows: dict[ThreadKey, tuple[str, int]] = {}
        for key, thread_ts, stamp in entries:
            earlier = rows.get(key)
            rows[key] = (thread_ts, max(stamp, earlier[1]) if earlier else stamp)
        params = {
            "b_t_channels": [key.channel for key in rows],
            "b_t_senders": [key.sender for key in rows],
            "b_t_origins": [key.origin for key in rows],
            "b_t_ts": [thread_ts for thread_ts, _ in rows.values()],
            "b_t_stamps": [stamp for _, stamp in rows.values()],
        }
        return params, [self._merged(account, key, ts, stamp) for key, ts, stamp in entries]

    def posted(self, account: str, key: ThreadKey, thread_ts: str, stamp: int) -> None:
        """An SMS stamped `stamp` is in Slack in `key`'s thread `thread_ts`; its commit
        (`remember_many`) is on the way. Known at once, so the next SMS of the same person,
        posted while that commit is written, goes into the same thread."""
        self._keep(account, key, self._merged(account, key, thread_ts, stamp))

    def learned(self, account: str, key: ThreadKey, entry: ThreadEntry) -> None:
        """After the commit of `remember`: the entry as the database now holds it."""
        self._keep(account, key, entry)

    def _merged(self, account: str, key: ThreadKey, thread_ts: str, stamp: int) -> ThreadEntry:
        """`key`'s thread is `thread_ts` and has an SMS at `stamp`: its entry, keeping the later
        last stamp of the one cached, as the database's upsert does."""
        cached = self._cache.get((account, key))
        last = max(stamp, cached.last_sms_timestamp) if cached else stamp
        return ThreadEntry(thread_ts, last)

    def forget_cached(self, account: str) -> None:
        """This replica (re)gained the lease: others may have written threads meanwhile."""
        for cached in [cached for cached in self._cache if cached[0] == account]:
            del self._cache[cached]

    def _keep(self, account: str, key: ThreadKey, entry: ThreadEntry) -> None:
        self._cache[(account, key)] = entry
        self._cache.move_to_end((account, key))
        while len(self._cache) > CACHED_THREADS:
            self._cache.popitem(last=False)

    async def forget_idle(self, conn: AsyncConnection, account: str, before: float) -> int:
        """Inside the caller's transaction: drop threads whose last SMS is older than `before`."""
        self.forget_cached(account)
        idle = await conn.execute(
            delete(threads).where(
                threads.c.account == account, threads.c.last_sms_timestamp < before
            )
        )
        return idle.rowcount


def _key_params(account: str, key: ThreadKey) -> dict[str, str]:
    return {
        "b_account": account,
        "b_channel": key.channel,
        "b_sender": key.sender,
        "b_origin": key.origin,
    }


_KEY = and_(
    threads.c.account == bindparam("b_account"),
    threads.c.channel == bindparam("b_channel"),
    threads.c.sender == bindparam("b_sender"),
    threads.c.origin == bindparam("b_origin"),
)
# Built once: they run for every post, and building costs more than running (see ledger.py).
_GET = select(threads.c.thread_ts, threads.c.last_sms_timestamp).where(_KEY)


# Insert the thread, or point it at `ts` and keep the later of the two last stamps. Run for
# every post, so written as SQL both databases read alike (see `execute_many`).
_REMEMBER = text(
    "INSERT INTO threads (account, channel, sender, origin, thread_ts, last_sms_timestamp)"
    " VALUES (:b_account, :b_channel, :b_sender, :b_origin, :b_ts, :b_stamp)"
    " ON CONFLICT (account, channel, sender, origin) DO UPDATE SET"
    " thread_ts = excluded.thread_ts,"
    " last_sms_timestamp = CASE WHEN excluded.last_sms_timestamp > threads.last_sms_timestamp"
    " THEN excluded.last_sms_timestamp ELSE threads.last_sms_timestamp END"
)
# The same for many threads at once, by arrays (PostgreSQL): a part of the ledger's
# one-statement group confirm, with the parameters `remember_all` makes.
REMEMBER_ALL = (
    "INSERT INTO threads (account, channel, sender, origin, thread_ts, last_sms_timestamp)"
    " SELECT :b_account, t.channel, t.sender, t.origin, t.thread_ts, t.stamp"
    " FROM unnest(CAST(:b_t_channels AS TEXT[]), CAST(:b_t_senders AS TEXT[]),"
    " CAST(:b_t_origins AS TEXT[]), CAST(:b_t_ts AS TEXT[]), CAST(:b_t_stamps AS BIGINT[]))"
    " AS t(channel, sender, origin, thread_ts, stamp)"
    " ON CONFLICT (account, channel, sender, origin) DO UPDATE SET"
    " thread_ts = excluded.thread_ts,"
    " last_sms_timestamp = GREATEST(excluded.last_sms_timestamp, threads.last_sms_timestamp)"
)
