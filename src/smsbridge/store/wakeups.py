"""Wake-ups between replicas on PostgreSQL: LISTEN/NOTIFY on one channel of the database.

Any replica may take a push or a thread reply (the load balancer picks one); only the replica
that holds an account's lease posts and sends for it. A notification tells that replica at once
instead of at its next poll. Losing one costs only speed: the next poll wakes everything anyway.
On SQLite there is one process, which wakes itself, so `notify` does nothing and `listen` is not
run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.backoff import Backoff

log = logging.getLogger(__name__)

CHANNEL = "smsbridge_wake"
PUSHED = "pushed"  # the gateway pushed an SMS, which waits to be posted
OUTBOUND = "outbound"  # someone wrote an SMS in Slack, which waits to be sent
LIVENESS_CHECK = 30.0  # seconds between checks that the listening connection still works
MAX_PENDING = 1000  # distinct wake-ups not yet handled; more are dropped (the poll catches up)

OnWake = Callable[[str, str], Awaitable[None]]  # (kind, account)


class Wakeups:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.enabled = engine.dialect.name == "postgresql"

    async def notify(self, kind: str, account: str) -> None:
        """Tell every replica that `account` has work of `kind`. Best effort: a failure is
        logged, since the next poll finds the work anyway."""
        if not self.enabled:
            return
        payload = json.dumps({"kind": kind, "account": account})
        try:
            async with self._engine.begin() as conn:
                await conn.execute(select(func.pg_notify(CHANNEL, payload)))
        except Exception as error:  # the work is stored; only the wake-up is lost
            log.warning("could not wake the other replicas (%s); the next poll will", error)

    async def listen(
        self, on_wake: OnWake, on_connect: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Call `on_wake(kind, account)` for each notification, until cancelled; a lost
        listening connection is opened again after a backoff. `on_connect` runs each time
        the listening starts: notifications sent while we were not listening are lost, so
        whatever they were about is looked for then."""
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                await self._listen_once(on_wake, on_connect, backoff)
            # Any failure of the connection (SQLAlchemy's, asyncpg's own, the network's): the
            # wake-ups are only a shortcut, so try again later whatever it was.
            except Exception as error:
                delay = backoff.next_delay()
                log.warning(
                    "lost the database connection that wakes this replica (%s); reconnecting "
                    "in %.1fs, polls go on meanwhile",
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _listen_once(
        self,
        on_wake: OnWake,
        on_connect: Callable[[], Awaitable[None]] | None,
        backoff: Backoff,
    ) -> None:
        waiting: set[tuple[str, str]] = set()  # repeated wake-ups of one account are one
        ready = asyncio.Event()

        def received(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            wake = _read(payload)
            if wake is not None and len(waiting) < MAX_PENDING:
                waiting.add(wake)
                ready.set()

        lost: list[bool] = []

        def terminated(_conn: Any) -> None:  # the server or the network closed it
            lost.append(True)
            ready.set()

        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            raw.add_termination_listener(terminated)
            await raw.add_listener(CHANNEL, received)
            backoff.reset()
            try:
                if on_connect is not None:
                    await on_connect()
                while True:
                    try:
                        async with asyncio.timeout(LIVENESS_CHECK):
                            await ready.wait()
                    except TimeoutError:
                        async with asyncio.timeout(10):  # a dead connection raises here
                            await raw.fetchval("SELECT 1")
                        continue
                    if lost:
                        raise ConnectionError("the connection was closed")
                    ready.clear()
                    batch = sorted(waiting)
                    waiting.clear()
                    for kind, account in batch:
                        await on_wake(kind, account)
            finally:
                # Never back into the pool: it listens, or it may be dead. Closed, and the pool
                # opens a fresh one when it needs one.
                with contextlib.suppress(Exception):
                    await conn.invalidate()


def _read(payload: str) -> tuple[str, str] | None:
    """(kind, account) from a notification; None for anything else on the channel."""
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    kind, account = document.get("kind"), document.get("account")
    if kind in (PUSHED, OUTBOUND) and isinstance(account, str):
        return kind, account
    return None
