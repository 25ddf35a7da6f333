"""LeaseKeeper: at most one replica polls (and posts for) a provider account at a time.

The lease is a row with an expiry measured on the database's clock. The holder renews it three
times per lease period; when the holder dies, its lease runs out and another replica's next
renewal takes it: within two lease periods of the death. A graceful stop gives it up at once.
Should two replicas ever overlap (a paused process resuming), the ledger's conditional claim
still lets only one of them post each SMS.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from smsbridge.stopping import Stopped, StopSignal
from smsbridge.store.store import Store, database_reason

log = logging.getLogger(__name__)


def replica_id() -> str:
    """Who we are in leases and claims: host, process and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        account: str,
        holder: str,
        ttl: float,
        stop: StopSignal,
    ) -> None:
        self._store = store
        self._account = account
        self.holder = holder
        self._ttl = ttl
        self._stop = stop
        self._on_gain: list[Callable[[], Awaitable[None]]] = []
        self.held = False
        self._failing = False

    def holds(self) -> bool:
        """Whether this replica holds the lease: the gate of polling and posting."""
        return self.held

    def when_gained(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call `callback` each time this replica gains the lease (to recover what waits)."""
        self._on_gain.append(callback)

    async def renew(self) -> bool:
        """Take or renew the lease once; on gaining it, recover and deliver what is waiting."""
        try:
            held = await self._store.leases.acquire(self._account, self.holder, self._ttl)
        except Exception as error:  # the database is busy or unreachable
            held = self._renewal_failed(error)
        else:
            if self._failing:
                log.info("the polling lease of %s can be renewed again", self._account)
            self._failing = False
        if held and not self.held:
            log.info("this replica now polls %s", self._account)
            self.held = True
            # Threads this process remembered may have moved on while another replica posted.
            self._store.threads.forget_cached(self._account)
            for callback in self._on_gain:
                await callback()
        elif not held and self.held:
            self.held = False
            if not self._failing:
                log.warning(
                    "another replica took over the polling lease of %s (this one could not "
                    "renew it in time); it polls and posts from now on",
                    self._account,
                )
        return self.held

    def _renewal_failed(self, error: Exception) -> bool:
        """Whether we still hold the lease although this renewal failed; says why, once."""
        # SQLite: the single-writer lock proves no other process exists, so nobody can take
        # the lease over; a busy database (a long transaction) only delays the renewal.
        exclusive = self._store.dialect == "sqlite"
        if not self._failing:
            if exclusive:
                log.warning(
                    "could not renew the polling lease of %s (%s); polling goes on, since no "
                    "other process can use this SQLite database",
                    self._account,
                    database_reason(error),
                    extra={"cause": "database"},
                )
            else:
                log.error(
                    "could not renew the polling lease of %s (%s); this replica pauses polling "
                    "and posting until the database answers, as another may take over",
                    self._account,
                    database_reason(error),
                    extra={"cause": "database"},
                )
        self._failing = True
        return exclusive and self.held

    async def run(self) -> None:
        """Renew until the service stops, then give the lease up."""
        try:
            while True:
                await self.renew()
                await self._stop.sleep(self._ttl / 3)
        except Stopped:
            pass
        finally:
            await self.release()

    async def release(self) -> None:
        """Give the lease up now, so another replica takes over at once."""
        if not self.held:
            return
        self.held = False
        try:
            await self._store.leases.release(self._account, self.holder)
        except Exception as error:
            log.warning("could not release the polling lease (%s); it expires by itself", error)
