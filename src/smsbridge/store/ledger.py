"""The delivery ledger: one row per inbound SMS (or unreadable record), written before the
cursor moves past it, and the state of its post.

    pending -> posting (claimed: a post may be in flight) -> posted | failed
    unrouted: no route matched its recipient; invalid: not a readable SMS (raw JSON kept)

Once an SMS is posted its text leaves the ledger (Slack holds it; `drop_posted_text`): what
still needs to recognise the SMS (a push and a poll of it under two ids) compares a SHA-256 of
the text, kept from the start, never the text itself.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsbridge.models import InboundSms, InvalidSms, ThreadKey
from smsbridge.store.cursors import Cursors
from smsbridge.store.dialects import Alone, conflict_insert, execute_many, run_alone
from smsbridge.store.schema import ledger
from smsbridge.store.states import count_states
from smsbridge.store.threads import REMEMBER_ALL, Threads

log = logging.getLogger(__name__)

ANALYZE_AFTER = 1000  # rows inserted before PostgreSQL's statistics are refreshed


class State(StrEnum):
    PENDING = "pending"
    POSTING = "posting"
    POSTED = "posted"
    FAILED = "failed"
    UNROUTED = "unrouted"
    INVALID = "invalid"
    TWIN = "twin"  # the same SMS as another row, come the other way (push or poll) under another id
    FORGOTTEN = "forgotten"  # erased on request (`smsbridge forget`); its id kept, nothing else


PENDING, POSTING, POSTED = State.PENDING, State.POSTING, State.POSTED
FAILED, UNROUTED, INVALID, TWIN = State.FAILED, State.UNROUTED, State.INVALID, State.TWIN
FORGOTTEN = State.FORGOTTEN


@dataclass(frozen=True, slots=True)
class LedgerRow:
    seq: int
    state: str
    channel: str
    sms: InboundSms
    claimed_at: float | None
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """An SMS is in Slack at `slack_ts`, in the thread `thread_ts` of `key`."""

    row: LedgerRow
    slack_ts: str
    key: ThreadKey
    thread_ts: str
    claim: LedgerRow | None = None  # the channel's next SMS, claimed in the same commit


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


class Ledger:
    def __init__(self, engine: AsyncEngine, cursors: Cursors, threads: Threads) -> None:
        self._engine = engine
        self._cursors = cursors  # the ledger moves the cursor in its own transactions
        self._threads = threads  # and remembers threads when it confirms a post
        # With pushes on, the same SMS may reach us twice under two ids (whether the pushed id
        # is the polled documentId is undocumented): then it is matched by its content too.
        self.match_twins = False
        self.drop_posted_text = True  # SMSBRIDGE_DROP_POSTED_TEXT
        self._unanalyzed = 0  # rows inserted since this process last refreshed statistics
        self._confirm_all: dict[bool, Alone] | None = None  # PostgreSQL's, compiled at first use
        # The "insert unless present" that dedupes SMS by documentId is dialect-specific.
        self._insert_unless_present = conflict_insert(engine)
        # Built once and run with many rows (SQLAlchemy batches them into multi-row INSERTs in
        # order, so arrival order holds): a statement built per page with its values inline
        # cost 12 times more per SMS, nearly all of it compiling (measured 0.38 ms per SMS).
        self._insert_new = (
            self._insert_unless_present(ledger)
            .on_conflict_do_nothing(index_elements=["account", "document_id"])
            .returning(ledger.c.account, ledger.c.document_id)
        )

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
        # Each poll re-reads SMS we have (its newest second, and with pushes on nearly all of
        # them): one read, before the write transaction, finds those, so they cost no insert
        # and the writer (which pushes wait for) is held only for what is new. An SMS that
        # arrives by push meanwhile is still caught: by the insert's ON CONFLICT, or as a twin.
        async with self._engine.connect() as conn:
            known = set(
                (
                    await conn.execute(
                        _KNOWN_IDS,
                        {"b_account": account, "b_ids": [sms.document_id for sms in messages]},
                    )
                ).scalars()
            )
        async with self._engine.begin() as conn:
            for bad in invalid:
                result = await conn.execute(
                    self._insert_unless_present(ledger)
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
            unknown = [
                (account, sms, channel)
                for sms, channel in zip(messages, channels, strict=True)
                if sms.document_id not in known
            ]
            news = await self._insert_many(conn, unknown, now, "poll")
            fresh = [sms for (_, sms, _), new in zip(unknown, news, strict=True) if new]
            await self._cursors.advance(conn, account, next_since)
        await self._analyze_after(len(fresh))
        return fresh, fresh_invalid

    async def ingest_pushed_many(
        self, pushed: Sequence[tuple[str, InboundSms, str | None]]
    ) -> list[bool]:
        """Record SMS the gateway pushed, (account, SMS, channel) each, in one transaction (the
        cursor is polling's own); for each, True if it was new."""
        now = time.time()
        async with self._engine.begin() as conn:
            news = await self._insert_many(conn, pushed, now, "push")
        await self._analyze_after(sum(news))
        return news

    async def _analyze_after(self, inserted: int) -> None:
        """On PostgreSQL, refresh the ledger's planner statistics once many rows arrived.

        Without them (a new database taking a large backlog, before autovacuum's next look
        a minute later) the planner guessed one row for any condition on the account and
        walked every row of it by whichever index came first, for each claim and confirm:
        a 20,000-SMS drain slowed to 341 SMS/s. ANALYZE samples the table in milliseconds."""
        if self._engine.dialect.name != "postgresql":
            return  # SQLite plans by its indexes' shape, and it plans these well
        self._unanalyzed += inserted
        if self._unanalyzed < ANALYZE_AFTER:
            return
        self._unanalyzed = 0
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text("ANALYZE ledger"))
        except DBAPIError as error:  # not the table's owner: autovacuum still does it, later
            log.info("could not refresh the ledger's statistics: %s", error.orig)

    async def _insert_many(
        self,
        conn: AsyncConnection,
        items: Sequence[tuple[str, InboundSms, str | None]],
        now: float,
        via: str,
    ) -> list[bool]:
        """Insert each (account, SMS, channel) unless present: deduplicated by documentId, and
        with pushes on by content against what came the other way. For each, True if new.

        One statement run with all their rows inserts them (in order, so arrival order holds)
        and says which were new; with pushes on, one more finds their twins. The twin check
        comes after our own insert, each SMS's check serialized: on PostgreSQL by advisory
        locks on the SMSs' content, on SQLite by the write lock our insert takes. A push and a
        poll of the same SMS landing at once therefore cannot both miss the other.
        """
        if not items:
            return []
        if self.match_twins and self._engine.dialect.name == "postgresql":
            for key in sorted({_content_key(account, sms) for account, sms, _ in items}):
                await conn.execute(select(func.pg_advisory_xact_lock(key)))
        result = await conn.execute(
            self._insert_new,
            [
                {
                    "account": account,
                    "document_id": sms.document_id,
                    "state": PENDING if channel else UNROUTED,
                    "channel": channel,
                    "sender": sms.sender,
                    "recipient": sms.recipient,
                    "origin_document_id": sms.origin_document_id,
                    "sms_timestamp": sms.timestamp,
                    "text": sms.text,
                    "text_hash": text_hash(sms.text),
                    "received_at": now,
                    "via": via,
                }
                for account, sms, channel in items
            ],
        )
        inserted = {(row.account, row.document_id) for row in result}
        news: list[bool] = []
        for account, sms, _ in items:  # an SMS named twice is new the first time only
            news.append((account, sms.document_id) in inserted)
            inserted.discard((account, sms.document_id))
        if self.match_twins:
            fresh = [
                (account, sms) for (account, sms, _), new in zip(items, news, strict=True) if new
            ]
            twins = await self._twins(conn, fresh, via)
            for index, (account, sms, _) in enumerate(items):
                twin = twins.get((account, sms.document_id))
                if twin is None:
                    continue
                news[index] = False
                # Kept as a twin, never posted: a later re-read of this id is then simply known.
                await conn.execute(
                    update(ledger)
                    .where(ledger.c.account == account, ledger.c.document_id == sms.document_id)
                    .values(
                        state=TWIN,
                        channel=None,
                        reason=f"the same SMS as {twin}",
                        done_at=now,
                        text="" if self.drop_posted_text else sms.text,
                    )
                )
                log.warning(
                    "SMS %s (by %s) is SMS %s (by the other path) under another id: matched by "
                    "sender, line, time and text, posted once. The pushed and polled ids differ.",
                    sms.document_id,
                    via,
                    twin,
                    extra={"cause": "id_mismatch"},
                )
        return news

    async def _twins(
        self, conn: AsyncConnection, fresh: Sequence[tuple[str, InboundSms]], via: str
    ) -> dict[tuple[str, str], str]:
        """For SMS just inserted: the id of the same SMS come the other way (push or poll)
        under another id, where there is one. One query: candidates by sender and second
        (indexed), compared on line and the text's hash here (rows stored before the hash
        existed are hashed here)."""
        if not fresh:
            return {}
        rows = await conn.execute(
            select(
                ledger.c.account,
                ledger.c.document_id,
                ledger.c.sender,
                ledger.c.recipient,
                ledger.c.sms_timestamp,
                ledger.c.text_hash,
                ledger.c.text,
            ).where(
                ledger.c.account.in_({account for account, _ in fresh}),
                ledger.c.sender.in_({sms.sender for _, sms in fresh}),
                ledger.c.sms_timestamp.in_({sms.timestamp for _, sms in fresh}),
                ledger.c.via != via,
                ledger.c.state != TWIN,
            )
        )
        others: dict[tuple[str, str, str | None, int, str], str] = {}
        for row in rows:
            digest = row.text_hash or text_hash(row.text)
            others.setdefault(
                (row.account, row.sender, row.recipient, row.sms_timestamp, digest),
                row.document_id,
            )
        twins: dict[tuple[str, str], str] = {}
        for account, sms in fresh:
            twin = others.get(
                (account, sms.sender, sms.recipient, sms.timestamp, text_hash(sms.text))
            )
            if twin is not None and twin != sms.document_id:
                twins[(account, sms.document_id)] = twin
        return twins

    async def backlog_channels(self, account: str) -> list[str]:
        """Channels with SMS waiting to be posted (or whose post is in doubt)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(ledger.c.channel).where(*_waiting(account)).distinct())
            return sorted(row[0] for row in rows)

    async def backlog_size(self, account: str, channel: str | None = None) -> int:
        """How many SMS wait to be posted (or have a post in doubt), in all or one channel."""
        async with self._engine.connect() as conn:
            count = await conn.execute(select(func.count()).where(*_waiting(account, channel)))
            return int(count.scalar_one())

    async def backlog_extent(self, account: str, channel: str) -> tuple[int, int, int, int]:
        """The SMS waiting for `channel`: how many, the first and last seq, and the oldest
        SMS timestamp (zeros when none wait)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.min(ledger.c.seq),
                        func.max(ledger.c.seq),
                        func.min(ledger.c.sms_timestamp),
                    ).where(*_waiting(account, channel))
                )
            ).one()
            return int(row[0]), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0)

    async def backlog(self, account: str, channel: str, limit: int = 50) -> list[LedgerRow]:
        """The oldest SMS waiting for `channel`, in arrival order."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ledger)
                .where(*_waiting(account, channel))
                .order_by(ledger.c.seq)
                .limit(limit)
            )
            return [_ledger_row(row._mapping) for row in rows]

    async def claim(self, account: str, document_id: str, holder: str = "") -> float | None:
        """pending -> posting. Returns the claim time, or None if the row was not pending."""
        return (await self.claim_many(account, [document_id], holder)).get(document_id)

    async def claim_many(
        self, account: str, document_ids: Sequence[str], holder: str = ""
    ) -> dict[str, float]:
        """pending -> posting for each, in one transaction: the claim time of each that was
        pending (the others are left out).

        The conditional update is the guard against two replicas ever posting the same SMS:
        only one of them can move the row out of `pending`.
        """
        now = time.time()
        async with self._engine.begin() as conn:
            took = await self._claim(conn, account, document_ids, holder, now)
        return {ident: now for ident in document_ids if ident in took}

    async def confirm_many(
        self, account: str, confirmations: Sequence[Confirmation], holder: str = ""
    ) -> list[float | None]:
        """posting -> posted for each, and remember their threads, in one transaction; and in
        the same transaction claim each one's `claim` (its channel's next SMS) as `claim()`
        would, so a post costs one commit, shared with the other channels' posts of the moment.
        For each: the claim time, or None if nothing was claimed."""
        now = time.time()
        wanted = [c.claim.sms.document_id for c in confirmations if c.claim is not None]
        posted = [(c.key, c.thread_ts, c.row.sms.timestamp) for c in confirmations]
        if self._engine.dialect.name == "postgresql":
            thread_params, entries = self._threads.remember_all(account, posted)
            claimed = await self._confirm_all_in_one(
                {
                    "b_account": account,
                    "b_ids": [c.row.sms.document_id for c in confirmations],
                    "b_posted_ts": [c.slack_ts for c in confirmations],
                    "b_in_threads": [c.thread_ts for c in confirmations],
                    "b_now": now,
                    "b_claim_ids": wanted,
                    "b_holder": holder,
                    **thread_params,
                }
            )
        else:
            async with self._engine.begin() as conn:
                await execute_many(
                    conn,
                    _CONFIRM_DROPPING_TEXT if self.drop_posted_text else _CONFIRM,
                    [
                        {
                            "b_account": account,
                            "b_document_id": c.row.sms.document_id,
                            "b_posted_ts": c.slack_ts,
                            "b_in_thread": c.thread_ts,
                            "b_now": now,
                        }
                        for c in confirmations
                    ],
                )
                entries = await self._threads.remember_many(conn, account, posted)
                claimed = await self._claim(conn, account, wanted, holder, now)
        for c, entry in zip(confirmations, entries, strict=True):
            self._threads.learned(account, c.key, entry)
        return [
            now if c.claim is not None and c.claim.sms.document_id in claimed else None
            for c in confirmations
        ]

    async def _confirm_all_in_one(self, params: dict[str, Any]) -> set[str]:
        """PostgreSQL's group confirm: the confirms, the threads and the claims in one
        statement, run alone (`run_alone`: all or nothing, one round trip where BEGIN, three
        statements and COMMIT took five), so the commit a channel waits for lands sooner.
        The ids it claimed."""
        if self._confirm_all is None:
            self._confirm_all = {
                drop: Alone.of(_CONFIRM_ALL_DROPPING_TEXT if drop else _CONFIRM_ALL, self._engine)
                for drop in (False, True)
            }
        return set(await run_alone(self._engine, self._confirm_all[self.drop_posted_text], params))

    @staticmethod
    async def _claim(
        conn: AsyncConnection, account: str, ids: Sequence[str], holder: str, now: float
    ) -> set[str]:
        """Claim the pending rows among `ids` in `conn`'s transaction; the ids it took."""
        if not ids:
            return set()
        if conn.dialect.name == "postgresql":
            # asyncpg cannot count a run of statements, so one UPDATE claims them all and
            # says which it took: one round trip, where a run and a check took two.
            took = await conn.execute(
                _CLAIM_ALL,
                {"b_account": account, "b_claim_ids": list(ids), "b_holder": holder, "b_now": now},
            )
            return set(took.scalars())
        changed = await execute_many(
            conn,
            _CLAIM,
            [
                {"b_account": account, "b_document_id": ident, "b_holder": holder, "b_now": now}
                for ident in ids
            ],
        )
        if changed == len(ids):
            return set(ids)
        mine = await conn.execute(  # some were not pending: which are ours?
            _CLAIMED_NOW,
            {"b_account": account, "b_ids": list(ids), "b_holder": holder, "b_now": now},
        )
        return set(mine.scalars())

    async def release(self, account: str, row: LedgerRow, holder: str) -> None:
        """posting -> pending for a row we claimed but never began to post (we are stopping,
        or lost the lease): whoever posts it next need not ask Slack whether it is there."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ledger)
                .where(
                    ledger.c.account == account,
                    ledger.c.document_id == row.sms.document_id,
                    ledger.c.state == POSTING,
                    ledger.c.claimed_by == holder,
                )
                .values(state=PENDING, claimed_at=None, claimed_by=None)
            )

    async def mark_failed(self, account: str, document_id: str, reason: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ledger)
                .where(ledger.c.account == account, ledger.c.document_id == document_id)
                .values(state=FAILED, reason=reason, done_at=time.time())
            )

    async def conversation(
        self, channel: str, thread_ts: str
    ) -> tuple[str, str, str | None] | None:
        """(account, sender, line) of the SMS bridged into a Slack thread: whom it talks to."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ledger.c.account, ledger.c.sender, ledger.c.recipient)
                    .where(
                        ledger.c.channel == channel,
                        ledger.c.thread_ts == thread_ts,
                        ledger.c.state == POSTED,
                    )
                    .order_by(ledger.c.seq.desc())
                    .limit(1)
                )
            ).first()
            return None if row is None else (row.account, row.sender, row.recipient)

    async def arrivals(self, account: str, since: float) -> dict[str, int]:
        """How many SMS reached us since `since` by each path ("push", "poll")."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(ledger.c.via, func.count())
                .where(
                    ledger.c.account == account,
                    ledger.c.received_at >= since,
                    ledger.c.via.is_not(None),
                )
                .group_by(ledger.c.via)
            )
            return {str(via): int(count) for via, count in rows}

    async def counts(self, account: str) -> dict[str, int]:
        """Ledger rows per state."""
        return await count_states(self._engine, ledger, account, State)

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
            since = await self._cursors.since_in(conn, account)
            if since is None:
                return 0, 0
            removed = await conn.execute(
                delete(ledger).where(
                    ledger.c.account == account,
                    ledger.c.state.in_((POSTED, UNROUTED, INVALID, TWIN, FORGOTTEN)),
                    ledger.c.received_at < before,
                    ledger.c.sms_timestamp < since,
                )
            )
            idle = await self._threads.forget_idle(conn, account, before)
            return removed.rowcount, idle

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


_KNOWN_IDS = select(ledger.c.document_id).where(
    ledger.c.account == bindparam("b_account"),
    ledger.c.document_id.in_(bindparam("b_ids", expanding=True)),
)
# Which of these rows this very claim took (its holder and time): when a run of claims
# updated fewer rows than asked. (One UPDATE … IN … RETURNING instead cost 7.5 ms on SQLite
# for ten rows, against 1.4 ms for the ten-row executemany and this rare check.)
_CLAIMED_NOW = select(ledger.c.document_id).where(
    ledger.c.account == bindparam("b_account"),
    ledger.c.document_id.in_(bindparam("b_ids", expanding=True)),
    ledger.c.state == POSTING,
    ledger.c.claimed_by == bindparam("b_holder"),
    ledger.c.claimed_at == bindparam("b_now"),
)
# The statements every post runs, as SQL both databases read alike: `execute_many` runs them
# on SQLite without SQLAlchemy's per-row work (see store/dialects.py).
# The claim finds its row by primary key, the key looked up by (account, documentId) alone.
# Written as one WHERE on account, documentId and state, it let PostgreSQL's planner, on a
# table without fresh statistics (a large backlog in a new or quiet database), pick the backlog
# index on (account, state) and filter every pending row of the account for each claim: the
# drain slowed as the backlog grew (341 SMS/s at 20,000 against 536 at 10,000, BENCHMARKS.md).
_CLAIM = text(
    f"UPDATE ledger SET state = '{POSTING}', claimed_at = :b_now, claimed_by = :b_holder"
    " WHERE seq = (SELECT seq FROM ledger"
    " WHERE account = :b_account AND document_id = :b_document_id)"
    f" AND state = '{PENDING}'"
)
# PostgreSQL's claim of several rows at once, by an array of ids (see Ledger._claim).
_CLAIM_ALL = text(
    f"UPDATE ledger SET state = '{POSTING}', claimed_at = :b_now, claimed_by = :b_holder"
    " WHERE seq IN (SELECT seq FROM ledger"
    " WHERE account = :b_account AND document_id = ANY(CAST(:b_claim_ids AS TEXT[])))"
    f" AND state = '{PENDING}' RETURNING document_id"
)
_CONFIRMED = (
    f"UPDATE ledger SET state = '{POSTED}', slack_ts = :b_posted_ts, thread_ts = :b_in_thread,"
    " done_at = :b_now{}"
    " WHERE account = :b_account AND document_id = :b_document_id"
)
_CONFIRM = text(_CONFIRMED.format(""))
_CONFIRM_DROPPING_TEXT = text(_CONFIRMED.format(", text = ''"))  # Slack has the text now
# PostgreSQL's group confirm in one statement (Ledger._confirm_all_in_one): each part changes other
# rows (a confirmed row is posting, a claimed one pending), as one statement must.
_CONFIRMED_ALL = (
    "WITH confirmed AS ("
    f"UPDATE ledger SET state = '{POSTED}', slack_ts = c.posted_ts, thread_ts = c.in_thread,"
    " done_at = :b_now{}"
    " FROM unnest(CAST(:b_ids AS TEXT[]), CAST(:b_posted_ts AS TEXT[]),"
    " CAST(:b_in_threads AS TEXT[])) AS c(document_id, posted_ts, in_thread)"
    " WHERE ledger.account = :b_account AND ledger.document_id = c.document_id),"
    f" remembered AS ({REMEMBER_ALL}),"
    f" claimed AS ({_CLAIM_ALL.text})"
    " SELECT document_id FROM claimed"
)
_CONFIRM_ALL = text(_CONFIRMED_ALL.format(""))
_CONFIRM_ALL_DROPPING_TEXT = text(_CONFIRMED_ALL.format(", text = ''"))


def text_hash(text: str) -> str:
    """What recognises an SMS's text once the text itself is gone."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _waiting(account: str, channel: str | None = None) -> list[ColumnElement[bool]]:
    """The rows waiting to be posted (or whose post is in doubt), in all or one channel."""
    where = [ledger.c.account == account, ledger.c.state.in_((PENDING, POSTING))]
    if channel is not None:
        where.append(ledger.c.channel == channel)
    return where


def _content_key(account: str, sms: InboundSms) -> int:
    """The advisory lock that serializes the twin checks of one SMS's two copies."""
    digest = hashlib.sha256(f"{account}|{sms.sender}|{sms.timestamp}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
