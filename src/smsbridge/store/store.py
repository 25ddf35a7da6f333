"""Store: the database, on SQLite (default) or PostgreSQL, and one object per thing it holds.

    store.ledger   the delivery ledger (ledger.py)     store.cursors  cursors (cursors.py)
    store.threads  the thread map (threads.py)         store.leases   polling leases (leases.py)
    store.outbox   SMS sent from Slack (outbox.py)     store.optouts  opt-outs (optouts.py)
    store.catch_ups   catch-up notices (catch_ups.py)
    store.contacts    the contact book (contacts.py)
    store.erasure     erasure on request (erasure.py)
    store.wakeups  wake-ups between replicas on PostgreSQL, LISTEN/NOTIFY (wakeups.py)

This class owns the engine: opening it, the schema and its upgrades, the single-writer lock.
One set of SQLAlchemy Core queries serves both databases; each dialect-specific piece sits in
the method that needs it: the "insert unless present" (ledger), the database clock (leases),
the advisory lock around upgrades (PostgreSQL) and the single-writer lock (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from collections.abc import AsyncIterator
from typing import Any, TextIO

from sqlalchemy import event, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from smsbridge.errors import StoreError
from smsbridge.store.catch_ups import CatchUps
from smsbridge.store.contacts import Contacts
from smsbridge.store.cursors import Cursors
from smsbridge.store.erasure import Erasure
from smsbridge.store.leases import Leases
from smsbridge.store.ledger import Ledger
from smsbridge.store.optouts import OptOuts
from smsbridge.store.outbox import Outbox
from smsbridge.store.schema import (
    LATEST,
    UPGRADES,
    schema_version,
)
from smsbridge.store.threads import Threads
from smsbridge.store.wakeups import Wakeups
from smsbridge.urls import hide_password

_UPGRADE_LOCK = 0x736D_7362  # "smsb": the advisory lock key for schema upgrades


# Seconds a writer waits for the one ahead of it. Each holds the lock for milliseconds; a longer
# wait means the one ahead is stuck in SQLite's busy wait for another process's lock, and adding
# our wait to its own would answer Slack or the gateway too late to be useful.
WRITER_WAIT = 3.0


class OneWriterEngine(AsyncEngine):
    """SQLite takes one writer at a time. Our writers queue here, in order, rather than in
    SQLite's busy handler, which retries in sleeps of up to 100 ms: a burst of pushes beside
    the delivery workers waited seconds there (bench/push.py's storm)."""

    __slots__ = ("_writer",)

    def __init__(self, sync_engine: Engine) -> None:
        super().__init__(sync_engine)
        self._writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(WRITER_WAIT):
                await self._writer.acquire()
        except TimeoutError as error:  # the writer ahead is stuck (another process's lock)
            raise OperationalError("BEGIN", None, error) from None
        try:
            async with super().begin() as conn:
                yield conn
        finally:
            self._writer.release()


def async_url(url: str) -> str:
    """Our settings speak plain sqlite:// and postgresql://; SQLAlchemy wants the async driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock_file: TextIO | None = None
        self.cursors = Cursors(engine)
        self.threads = Threads(engine)
        self.leases = Leases(engine)
        self.ledger = Ledger(engine, self.cursors, self.threads)
        self.outbox = Outbox(engine, self.threads)
        self.optouts = OptOuts(engine)
        self.catch_ups = CatchUps(engine)
        self.contacts = Contacts(engine)
        self.erasure = Erasure(engine)
        self.wakeups = Wakeups(engine)

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            # hide_parameters: a failed statement's error would otherwise carry its values
            # (SMS texts, phone numbers) into logs and status answers.
            # pool_use_lifo: the connection used last serves next, its page cache still warm
            # (SQLite drops a connection's cache when another connection has written since).
            engine = create_async_engine(async_url(url), hide_parameters=True, pool_use_lifo=True)
            if engine.dialect.name == "sqlite":
                engine = OneWriterEngine(engine.sync_engine)
        except ModuleNotFoundError as error:
            raise StoreError(
                f"the database driver for {url.split(':', 1)[0]} is not installed ({error.name}); "
                "for PostgreSQL install smsbridge with the 'postgres' extra"
            ) from None
        if engine.dialect.name == "sqlite":
            _owner_only(engine.url.database)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The engine itself, for what no table class offers (tests that write old rows)."""
        return self._engine

    @property
    def shown_url(self) -> str:
        """The database URL as it may be shown: password hidden."""
        return hide_password(self._engine.url.render_as_string(hide_password=False))

    async def close(self) -> None:
        await self._engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return str(self._engine.dialect.name)

    def lock_for_single_writer(self) -> None:
        """SQLite cannot coordinate several processes: make sure this is the only `run`.

        PostgreSQL needs no such lock; replicas coordinate through the lease table.
        """
        if self.dialect != "sqlite" or self._lock_file is not None:
            return
        database = self._engine.url.database
        if not database or database == ":memory:":
            return
        database = database.removeprefix("file:")  # a URI filename (?mode=...&uri=true)
        # held open for the process's life; owner-only, like the database beside it
        lock = os.fdopen(os.open(f"{database}.lock", os.O_CREAT | os.O_WRONLY, 0o600), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreError(
                f"another smsbridge process is already running on the SQLite database {database}. "
                "SQLite cannot coordinate several processes: run one, or use PostgreSQL for "
                "replicas (SMSBRIDGE_DATABASE_URL=postgresql://user@host/db)"
            ) from None
        self._lock_file = lock

    # -- schema -------------------------------------------------------------------------------

    async def version(self) -> int:
        async with self._engine.connect() as conn:
            return await _version(conn)

    async def upgrade(self) -> tuple[int, int]:
        """Bring the schema to the latest version; returns (before, after).

        Replicas starting together would race to create the same tables, so on PostgreSQL the
        whole upgrade runs under an advisory lock: the first upgrades, the others then find the
        schema current.
        """
        try:
            async with self._engine.connect() as guard:
                if self.dialect == "postgresql":
                    await guard.execute(
                        text("SELECT pg_advisory_lock(:key)"), {"key": _UPGRADE_LOCK}
                    )
                try:
                    steps = await self._upgrade_steps()
                finally:
                    if self.dialect == "postgresql":
                        await guard.execute(
                            text("SELECT pg_advisory_unlock(:key)"), {"key": _UPGRADE_LOCK}
                        )
        except (OSError, DBAPIError) as error:
            raise self.unusable(error) from None
        try:
            # A schema already current needs no write: prove now that we can write at all, or
            # a read-only database would let the service run forever without polling.
            async with self._engine.begin() as conn:
                await conn.execute(update(schema_version).values(version=schema_version.c.version))
        except (OSError, DBAPIError) as error:
            raise self.unusable(error, "cannot write to") from None
        return steps

    def unusable(self, error: BaseException, what: str = "cannot use") -> StoreError:
        """The driver's error as one line naming the database (password hidden) and the fix."""
        reason = database_reason(error)
        return StoreError(
            f"{what} the database {self.shown_url}: {reason}. Check SMSBRIDGE_DATABASE_URL, "
            "that the database (and its user) exist, that the server is running and that the "
            "database is writable."
        )

    async def _upgrade_steps(self) -> tuple[int, int]:
        async with self._engine.begin() as conn:
            before = await _version(conn, create=True)
        if before > LATEST:
            raise StoreError(
                f"the database schema is version {before}, newer than this smsbridge understands "
                f"({LATEST}); run the newer smsbridge release, or point SMSBRIDGE_DATABASE_URL "
                "at another database"
            )
        for target in range(before + 1, LATEST + 1):
            async with self._engine.begin() as conn:
                await UPGRADES[target - 1](conn)
                await conn.execute(update(schema_version).values(version=target))
        return before, LATEST


async def _version(conn: AsyncConnection, create: bool = False) -> int:
    has_table = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, schema_version.name))
    if not has_table:
        if not create:
            return 0
        await conn.run_sync(lambda sync: schema_version.create(sync))
    version = (await conn.execute(select(schema_version.c.version))).scalar_one_or_none()
    if version is None:
        if create:
            await conn.execute(schema_version.insert().values(version=0))
        return 0
    return int(version)


def database_reason(error: BaseException) -> str:
    """The driver's own words for a database error, on one line (no SQL, no values)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _owner_only(database: str | None) -> None:
    """Create the SQLite file readable by its owner only (it holds SMS texts and numbers).

    SQLite gives its -wal and -shm files the mode of the database file, so they follow. A file
    an older release left readable by others is tightened.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
    except OSError:
        return  # a missing directory or a read-only file: the upgrade says which, and exits 2
    for path in (database, f"{database}-wal", f"{database}-shm", f"{database}.lock"):
        try:
            mode = os.stat(path).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))
        except OSError:
            continue


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (slash commands) run beside the writer; synchronous=NORMAL in WAL mode is
    # durable against a killed process, which is the failure we must survive.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # 512 KiB of page cache per connection instead of 2 MiB: the pool holds up to 15 of them,
    # and the operating system caches the file anyway. Peak RSS in bench/throughput.py: 129 ->
    # 113 MiB, the drain's speed unchanged.
    cursor.execute("PRAGMA cache_size=-512")
    cursor.close()
