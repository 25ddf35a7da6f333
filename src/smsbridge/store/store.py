"""Store: cursor, delivery ledger, thread map and leases, on SQLite (default) or PostgreSQL.

One set of SQLAlchemy Core queries serves both. The dialect-specific pieces, each at its use:
the "insert unless present" that dedupes SMS by documentId, the database clock for leases,
the advisory lock around schema upgrades (PostgreSQL) and the single-writer lock (SQLite).
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import and_, delete, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from smsbridge.errors import StoreError
from smsbridge.models import InboundSms, InvalidSms, ThreadKey
from smsbridge.store.schema import (
    LATEST,
    UPGRADES,
    cursors,
    leases,
    ledger,
    schema_version,
    threads,
)
from smsbridge.urls import hide_password

_UPGRADE_LOCK = 0x736D_7362  # "smsb": the advisory lock key for schema upgrades
PENDING, POSTING, POSTED, FAILED, UNROUTED = "pending", "posting", "posted", "failed", "unrouted"
INVALID = "invalid"  # a record of a page that is not a readable SMS: raw JSON in `text`
STATES = (PENDING, POSTING, POSTED, FAILED, UNROUTED, INVALID)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    seq: int
    state: str
    channel: str
    sms: InboundSms
    claimed_at: float | None
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class PostRef:
    channel: str
    ts: str
    thread_ts: str

    def permalink(self, workspace_url: str) -> str:
        """A link that opens the message (in its thread, for a reply)."""
        link = f"{workspace_url.rstrip('/')}/archives/{self.channel}/p{self.ts.replace('.', '')}"
        if self.thread_ts != self.ts:
            link += f"?thread_ts={self.thread_ts}&cid={self.channel}"
        return link


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    thread_ts: str
    last_sms_timestamp: int


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
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            # hide_parameters: a failed statement's error would otherwise carry its values
            # (SMS texts, phone numbers) into logs and status answers.
            engine = create_async_engine(async_url(url), hide_parameters=True)
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

    # -- leases: which replica polls an account ------------------------------------------------

    def _db_now(self) -> Any:
        """The database's clock in epoch seconds: one clock for every replica, no skew."""
        if self.dialect == "postgresql":
            return func.extract("epoch", func.clock_timestamp())
        return (func.julianday("now") - 2440587.5) * 86400.0

    async def acquire_lease(self, account: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease on `account` for `ttl` seconds; False if another holds it."""
        async with self._engine.begin() as conn:
            now = float((await conn.execute(select(self._db_now()))).scalar_one())
            await conn.execute(
                self._insert(leases)
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

    async def release_lease(self, account: str, holder: str) -> None:
        """Give the lease up now, so another replica takes over at once."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(leases)
                .where(leases.c.account == account, leases.c.holder == holder)
                .values(expires_at=0.0)
            )

    async def lease_holder(self, account: str) -> str | None:
        async with self._engine.connect() as conn:
            now = float((await conn.execute(select(self._db_now()))).scalar_one())
            row = await conn.execute(
                select(leases.c.holder).where(
                    leases.c.account == account, leases.c.expires_at >= now
                )
            )
            return row.scalar_one_or_none()

    async def record_poll(self, account: str) -> None:
        """A poll of `account` succeeded (seen by every replica's readiness and status)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(cursors).where(cursors.c.account == account).values(last_poll_at=time.time())
            )

    async def last_poll(self, account: str) -> float | None:
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(cursors.c.last_poll_at).where(cursors.c.account == account)
            )
            return row.scalar_one_or_none()

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

    # -- cursor -------------------------------------------------------------------------------

    async def cursor(self, account: str) -> int | None:
        async with self._engine.connect() as conn:
            row = await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
            return row.scalar_one_or_none()

    async def _advance_cursor(self, conn: AsyncConnection, account: str, since: int) -> None:
        current = (
            await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
        ).scalar_one_or_none()
        if current is None:
            await conn.execute(
                cursors.insert().values(account=account, since=since, updated_at=time.time())
            )
        elif since > current:  # never backwards
            await conn.execute(
                update(cursors)
                .where(cursors.c.account == account)
                .values(since=since, updated_at=time.time())
            )

    # -- ledger -------------------------------------------------------------------------------

    async def ingest(
        self,
        account: str,
        messages: Sequence[InboundSms],
        channels: Sequence[str | None],
        next_since: int,
        invalid: Sequence[InvalidSms] = (),
    ) -> tuple[list[InboundSms], list[InvalidSms]]:
        """Record new SMS (and invalid records) and move the cursor, in one transaction.

        Returns the SMS and the invalid records that were new. The cursor moves only together
        with the rows it moves past, so a crash between the two cannot lose a message.
        """
        fresh: list[InboundSms] = []
        fresh_invalid: list[InvalidSms] = []
        now = time.time()
        async with self._engine.begin() as conn:
            for bad in invalid:
                result = await conn.execute(
                    self._insert(ledger)
                    .values(
                        account=account,
                        document_id=bad.key,
                        state=INVALID,
                        sender="",
                        sms_timestamp=bad.timestamp or 0,
                        text=bad.raw,
                        reason=bad.reason,
                        received_at=now,
                        done_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["account", "document_id"])
                )
                if result.rowcount:
                    fresh_invalid.append(bad)
            for sms, channel in zip(messages, channels, strict=True):
                statement = (
                    self._insert(ledger)
                    .values(
                        account=account,
                        document_id=sms.document_id,
                        state=PENDING if channel else UNROUTED,
                        channel=channel,
                        sender=sms.sender,
                        recipient=sms.recipient,
                        origin_document_id=sms.origin_document_id,
                        sms_timestamp=sms.timestamp,
                        text=sms.text,
                        received_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["account", "document_id"])
                )
                result = await conn.execute(statement)
                if result.rowcount:
                    fresh.append(sms)
            await self._advance_cursor(conn, account, next_since)
        return fresh, fresh_invalid

    async def backlog_channels(self, account: str) -> list[str]:
        """Channels with SMS waiting to be posted (or whose post is in doubt)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ledger.c.channel)
                .where(ledger.c.account == account, ledger.c.state.in_((PENDING, POSTING)))
                .distinct()
            )
            return sorted(row[0] for row in rows)

    async def backlog_size(self, account: str, channel: str | None = None) -> int:
        """How many SMS wait to be posted (or have a post in doubt), in all or one channel."""
        where = [ledger.c.account == account, ledger.c.state.in_((PENDING, POSTING))]
        if channel is not None:
            where.append(ledger.c.channel == channel)
        async with self._engine.connect() as conn:
            count = await conn.execute(select(func.count()).where(*where))
            return int(count.scalar_one())

    async def backlog(self, account: str, channel: str, limit: int = 50) -> list[LedgerRow]:
        """The oldest SMS waiting for `channel`, in arrival order."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ledger)
                .where(
                    ledger.c.account == account,
                    ledger.c.channel == channel,
                    ledger.c.state.in_((PENDING, POSTING)),
                )
                .order_by(ledger.c.seq)
                .limit(limit)
            )
            return [_ledger_row(row._mapping) for row in rows]

    async def claim(self, account: str, document_id: str, holder: str = "") -> float | None:
        """pending -> posting. Returns the claim time, or None if the row was not pending.

        The conditional update is the guard against two replicas ever posting the same SMS:
        only one of them can move the row out of `pending`.
        """
        now = time.time()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(ledger)
                .where(
                    ledger.c.account == account,
                    ledger.c.document_id == document_id,
                    ledger.c.state == PENDING,
                )
                .values(state=POSTING, claimed_at=now, claimed_by=holder)
            )
            return now if result.rowcount == 1 else None

    async def confirm(
        self, account: str, row: LedgerRow, slack_ts: str, key: ThreadKey, thread_ts: str
    ) -> None:
        """posting -> posted, and remember the thread, in one transaction."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ledger)
                .where(ledger.c.account == account, ledger.c.document_id == row.sms.document_id)
                .values(state=POSTED, slack_ts=slack_ts, thread_ts=thread_ts, done_at=time.time())
            )
            where = and_(
                threads.c.account == account,
                threads.c.channel == key.channel,
                threads.c.sender == key.sender,
                threads.c.origin == key.origin,
            )
            current = (await conn.execute(select(threads).where(where))).first()
            if current is None:
                await conn.execute(
                    threads.insert().values(
                        account=account,
                        channel=key.channel,
                        sender=key.sender,
                        origin=key.origin,
                        thread_ts=thread_ts,
                        last_sms_timestamp=row.sms.timestamp,
                    )
                )
            else:
                await conn.execute(
                    update(threads)
                    .where(where)
                    .values(
                        thread_ts=thread_ts,
                        last_sms_timestamp=max(current.last_sms_timestamp, row.sms.timestamp),
                    )
                )

    async def mark_failed(self, account: str, document_id: str, reason: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ledger)
                .where(ledger.c.account == account, ledger.c.document_id == document_id)
                .values(state=FAILED, reason=reason, done_at=time.time())
            )

    async def thread(self, account: str, key: ThreadKey) -> ThreadEntry | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(threads.c.thread_ts, threads.c.last_sms_timestamp).where(
                        threads.c.account == account,
                        threads.c.channel == key.channel,
                        threads.c.sender == key.sender,
                        threads.c.origin == key.origin,
                    )
                )
            ).first()
            return None if row is None else ThreadEntry(row.thread_ts, row.last_sms_timestamp)

    async def counts(self, account: str) -> dict[str, int]:
        """Ledger rows per state."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ledger.c.state, func.count())
                .where(ledger.c.account == account)
                .group_by(ledger.c.state)
            )
            found = {state: count for state, count in rows}
            return {state: found.get(state, 0) for state in STATES}

    async def posts(self, account: str, document_ids: Sequence[str]) -> dict[str, PostRef]:
        """Where each of these SMS was posted in Slack, for those that were."""
        found: dict[str, PostRef] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(document_ids), 500):  # keep IN (...) lists modest
                rows = await conn.execute(
                    select(
                        ledger.c.document_id,
                        ledger.c.channel,
                        ledger.c.slack_ts,
                        ledger.c.thread_ts,
                    ).where(
                        ledger.c.account == account,
                        ledger.c.state == POSTED,
                        ledger.c.document_id.in_(document_ids[start : start + 500]),
                    )
                )
                for row in rows:
                    found[row.document_id] = PostRef(row.channel, row.slack_ts, row.thread_ts)
        return found

    async def posted_since(self, account: str, moment: float) -> int:
        """How many SMS were posted to Slack since `moment` (epoch seconds)."""
        async with self._engine.connect() as conn:
            count = await conn.execute(
                select(func.count()).where(
                    ledger.c.account == account,
                    ledger.c.state == POSTED,
                    ledger.c.done_at >= moment,
                )
            )
            return int(count.scalar_one())

    async def prune(self, account: str, before: float) -> tuple[int, int]:
        """Forget posted, unrouted and invalid SMS received before `before`, and idle threads.

        Returns (SMS, threads) removed. Failed SMS are kept until replayed. Only SMS older than
        the cursor go: the cursor re-reads its newest second on every poll, so an SMS at or
        after it must stay in the ledger to be recognised; anything before it can never be
        fetched again, so forgetting it cannot cause a second post.
        """
        async with self._engine.begin() as conn:
            since = (
                await conn.execute(select(cursors.c.since).where(cursors.c.account == account))
            ).scalar_one_or_none()
            if since is None:
                return 0, 0
            removed = await conn.execute(
                delete(ledger).where(
                    ledger.c.account == account,
                    ledger.c.state.in_((POSTED, UNROUTED, INVALID)),
                    ledger.c.received_at < before,
                    ledger.c.sms_timestamp < since,
                )
            )
            idle = await conn.execute(
                delete(threads).where(
                    threads.c.account == account, threads.c.last_sms_timestamp < before
                )
            )
            return removed.rowcount, idle.rowcount

    async def replay(
        self,
        account: str,
        *,
        failed: bool,
        unrouted: bool,
        channel_for: Callable[[str | None], str | None],
    ) -> tuple[int, int]:
        """Queue failed SMS (and unrouted ones that now have a route) to be posted again.

        Returns (queued, still unrouted).
        """
        queued = still_unrouted = 0
        async with self._engine.begin() as conn:
            if failed:
                result = await conn.execute(
                    update(ledger)
                    .where(ledger.c.account == account, ledger.c.state == FAILED)
                    .values(
                        state=PENDING, reason=None, claimed_at=None, claimed_by=None, done_at=None
                    )
                )
                queued += result.rowcount
            if unrouted:
                rows = await conn.execute(
                    select(ledger.c.seq, ledger.c.recipient).where(
                        ledger.c.account == account, ledger.c.state == UNROUTED
                    )
                )
                for seq, recipient in rows.all():
                    channel = channel_for(recipient)
                    if channel is None:
                        still_unrouted += 1
                        continue
                    await conn.execute(
                        update(ledger)
                        .where(ledger.c.seq == seq)
                        .values(state=PENDING, channel=channel)
                    )
                    queued += 1
        return queued, still_unrouted


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


def _ledger_row(mapping: Any) -> LedgerRow:
    # Built without validation: the row was read from the gateway once, and a rule tightened
    # since (a bound on stamps, ids) must not make a stored SMS unreadable and stall its channel.
    sms = InboundSms.model_construct(
        sender=mapping["sender"],
        recipient=mapping["recipient"],
        document_id=mapping["document_id"],
        origin_document_id=mapping["origin_document_id"],
        timestamp=mapping["sms_timestamp"],
        text=mapping["text"],
    )
    return LedgerRow(
        seq=mapping["seq"],
        state=mapping["state"],
        channel=mapping["channel"],
        sms=sms,
        claimed_at=mapping["claimed_at"],
        claimed_by=mapping["claimed_by"],
    )


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
    cursor.close()
