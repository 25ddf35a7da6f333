"""The store's promises, on SQLite and on PostgreSQL (same queries, same cases)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from smsbridge.errors import StoreError
from smsbridge.models import InboundSms, InvalidSms, ThreadKey, read_message
from smsbridge.provider.client import parse_page
from smsbridge.store.ledger import _CLAIM_ALL, _CONFIRM_ALL, Confirmation, PostRef
from smsbridge.store.schema import LATEST, schema_version, threads
from smsbridge.store.store import Store, async_url
from smsbridge.store.threads import ThreadEntry

ACCOUNT = "demo@reseller"


def sms(document_id: str, timestamp: int = 100, sender: str = "61409560857") -> InboundSms:
    return InboundSms.model_validate(
        {
            "from": sender,
            "documentId": document_id,
            "timestamp": timestamp,
            "text": f"text {document_id}",
        }
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_database"))


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    """A store on `url`, its schema made, closed afterwards."""
    store = Store.open(url)
    try:
        await store.upgrade()
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with opened(database_url) as each:
        yield each


@pytest.fixture
async def postgres_store(postgres_database: str) -> AsyncIterator[Store]:
    """For what only PostgreSQL does."""
    async with opened(postgres_database) as each:
        yield each


def test_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///./smsbridge.db") == "sqlite+aiosqlite:///./smsbridge.db"
    assert async_url("postgres://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"


async def test_ingest_dedupes_by_document_id(store: Store) -> None:
    first, _ = await store.ledger.ingest(ACCOUNT, [sms("a"), sms("b")], ["C1", "C1"], 99)
    again, _ = await store.ledger.ingest(ACCOUNT, [sms("b"), sms("c")], ["C1", "C1"], 99)
    assert [m.document_id for m in first] == ["a", "b"]
    assert [m.document_id for m in again] == ["c"]
    assert [row.sms.document_id for row in await store.ledger.backlog(ACCOUNT, "C1")] == [
        "a",
        "b",
        "c",
    ]


async def test_a_page_naming_one_sms_twice_stores_it_once_in_page_order(store: Store) -> None:
    page = [sms(f"p{index}") for index in range(60)] + [sms("p3")]
    fresh, _ = await store.ledger.ingest(ACCOUNT, page, ["C1"] * len(page), 99)
    assert [m.document_id for m in fresh] == [f"p{index}" for index in range(60)]
    waiting = await store.ledger.backlog(ACCOUNT, "C1", limit=100)
    assert [row.sms.document_id for row in waiting] == [f"p{index}" for index in range(60)]


async def test_a_batch_of_pushes_names_the_new_ones_and_matches_twins_once(
    store: Store,
) -> None:
    store.ledger.match_twins = True
    polled = sms("poll-1", timestamp=200)
    await store.ledger.ingest(ACCOUNT, [polled], ["C1"], 99)
    pushed_twin = InboundSms(
        sender=polled.sender,
        recipient=polled.recipient,
        document_id="push-1",
        timestamp=polled.timestamp,
        text=polled.text,
    )
    news = await store.ledger.ingest_pushed_many(
        [(ACCOUNT, sms("push-2", timestamp=201), "C1"), (ACCOUNT, pushed_twin, "C1"),
         (ACCOUNT, sms("push-2", timestamp=201), "C1")]
    )  # fmt: skip
    assert news == [True, False, False]
    counts = await store.ledger.counts(ACCOUNT)
    assert (counts["pending"], counts["twin"]) == (2, 1)


async def test_accounts_are_kept_apart(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("a")], ["C1"], 10)
    fresh, _ = await store.ledger.ingest("other@reseller", [sms("a")], ["C1"], 5)
    assert [m.document_id for m in fresh] == ["a"]
    assert (await store.cursors.get(ACCOUNT), await store.cursors.get("other@reseller")) == (10, 5)


async def test_cursor_never_moves_backwards(store: Store) -> None:
    assert await store.cursors.get(ACCOUNT) is None
    await store.ledger.ingest(ACCOUNT, [], [], 500)
    await store.ledger.ingest(ACCOUNT, [], [], 400)
    assert await store.cursors.get(ACCOUNT) == 500


async def test_unrouted_rows_are_kept_but_never_delivered(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("a")], [None], 10)
    assert await store.ledger.backlog_channels(ACCOUNT) == []
    assert (await store.ledger.counts(ACCOUNT))["unrouted"] == 1


async def test_any_text_a_gateway_sends_is_stored_in_either_database(store: Store) -> None:
    # NUL (which PostgreSQL refuses in text) and half an emoji (which UTF-8 cannot carry), as
    # JSON escapes in an ASCII page: either failed the page's transaction, at every poll.
    body = b'{"status": 0, "messages": [{"from": "61409560857", "documentId": "a",'
    body += b' "timestamp": 100, "text": "nul \\u0000, half \\ud83d, whole \\ud83d\\ude00"}]}'
    page = parse_page(body)
    fresh, _ = await store.ledger.ingest(ACCOUNT, page.messages, ["C1"], 99)
    assert [sms.document_id for sms in fresh] == ["a"]
    [row] = await store.ledger.backlog(ACCOUNT, "C1")
    assert row.sms.text == "nul \ufffd, half \ufffd, whole \U0001f600"


async def test_one_confirm_transaction_posts_several_channels_and_claims_each_next(
    store: Store,
) -> None:
    messages = [sms("a1", 100), sms("a2", 101), sms("b1", 100, "614222"), sms("b2", 102, "614222")]
    await store.ledger.ingest(ACCOUNT, messages, ["C1", "C1", "C2", "C2"], 10)
    a1, a2 = await store.ledger.backlog(ACCOUNT, "C1")
    b1, b2 = await store.ledger.backlog(ACCOUNT, "C2")
    for row in (a1, b1):
        assert await store.ledger.claim(ACCOUNT, row.sms.document_id, "me") is not None
    assert await store.ledger.claim(ACCOUNT, "b2", "other replica") is not None  # taken
    ka, kb = ThreadKey("C1", "61409560857", ""), ThreadKey("C2", "614222", "")
    claims = await store.ledger.confirm_many(
        ACCOUNT,
        [Confirmation(a1, "1.1", ka, "1.1", claim=a2), Confirmation(b1, "2.1", kb, "2.1", b2)],
        holder="me",
    )
    assert claims[0] is not None  # a2 was pending: claimed in the same commit
    assert claims[1] is None  # b2 was another's: not ours to post
    rows = {
        r.sms.document_id: r for ch in ("C1", "C2") for r in await store.ledger.backlog(ACCOUNT, ch)
    }
    assert (rows["a2"].state, rows["a2"].claimed_by) == ("posting", "me")
    assert rows["b2"].claimed_by == "other replica"
    assert set(rows) == {"a2", "b2"}  # a1 and b1 are posted
    [posted] = (await store.ledger.posts(ACCOUNT, ["a1"])).values()
    assert (posted.ts, posted.thread_ts) == ("1.1", "1.1")


async def test_one_group_confirm_may_hold_several_sms_of_one_thread(store: Store) -> None:
    # One person's SMS posted back to back meet in one commit; on PostgreSQL that commit is one
    # statement, which may change a thread's row only once.
    await store.ledger.ingest(
        ACCOUNT, [sms("a1", 100), sms("a2", 300), sms("a3", 200)], ["C1"] * 3, 10
    )
    rows = await store.ledger.backlog(ACCOUNT, "C1")
    assert len(await store.ledger.claim_many(ACCOUNT, ["a1", "a2", "a3"], "me")) == 3
    key = ThreadKey("C1", "61409560857", "")
    confirms = [  # the third starts a new thread (the first had gone idle, say)
        Confirmation(rows[0], "1.1", key, "1.1"),
        Confirmation(rows[1], "1.2", key, "1.1"),
        Confirmation(rows[2], "1.3", key, "1.3"),
    ]
    assert await store.ledger.confirm_many(ACCOUNT, confirms, holder="me") == [None] * 3
    assert await store.ledger.backlog(ACCOUNT, "C1") == []
    posts = await store.ledger.posts(ACCOUNT, ["a1", "a2", "a3"])
    assert [(posts[i].ts, posts[i].thread_ts) for i in ("a1", "a2", "a3")] == [
        ("1.1", "1.1"),
        ("1.2", "1.1"),
        ("1.3", "1.3"),
    ]
    store.threads.forget_cached(ACCOUNT)  # what the database holds: as if run one by one
    assert await store.threads.get(ACCOUNT, key) == ThreadEntry("1.3", 300)


async def test_a_group_confirm_that_fails_midway_writes_nothing_and_says_why_without_values(
    store: Store,
) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("a1", 100), sms("a2", 101)], ["C1", "C1"], 10)
    a1, a2 = await store.ledger.backlog(ACCOUNT, "C1")
    assert await store.ledger.claim(ACCOUNT, "a1", "me") is not None
    async with store.engine.begin() as conn:  # the thread's write, after the confirm's, fails
        await conn.execute(text("DROP TABLE threads"))
    key = ThreadKey("C1", "61409560857", "")
    with pytest.raises(DBAPIError) as raised:  # as SQLAlchemy raises, whichever runs it
        await store.ledger.confirm_many(
            ACCOUNT, [Confirmation(a1, "1.1", key, "1.1", claim=a2)], holder="me"
        )
    assert "threads" in str(raised.value)
    assert "61409560857" not in str(raised.value)  # the values stay out of logs
    rows = await store.ledger.backlog(ACCOUNT, "C1")  # the confirm and the claim rolled back
    assert [(r.sms.document_id, r.state) for r in rows] == [("a1", "posting"), ("a2", "pending")]
    assert await store.ledger.posts(ACCOUNT, ["a1"]) == {}


async def test_a_thread_keeps_its_latest_sms_stamp_and_the_cache_is_dropped_on_request(
    store: Store,
) -> None:
    key = ThreadKey("C1", "61409560857", "")
    for stamp in (200, 150):  # an older SMS confirmed later must not make the thread look idle
        async with store.engine.begin() as conn:
            [entry] = await store.threads.remember_many(conn, ACCOUNT, [(key, "9.1", stamp)])
        store.threads.learned(ACCOUNT, key, entry)
    assert await store.threads.get(ACCOUNT, key) == ThreadEntry("9.1", 200)
    async with store.engine.begin() as conn:  # another replica moved the thread on meanwhile
        await conn.execute(update(threads).values(thread_ts="9.7", last_sms_timestamp=300))
    assert await store.threads.get(ACCOUNT, key) == ThreadEntry("9.1", 200)  # cached
    store.threads.forget_cached(ACCOUNT)  # this replica (re)gained the lease
    assert await store.threads.get(ACCOUNT, key) == ThreadEntry("9.7", 300)


async def test_claim_is_exclusive_and_confirm_records_the_thread(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("a", 100)], ["C1"], 10)
    assert await store.ledger.claim(ACCOUNT, "a") is not None
    assert await store.ledger.claim(ACCOUNT, "a") is None  # a second claimant loses
    [row] = await store.ledger.backlog(ACCOUNT, "C1")
    assert row.state == "posting"
    key = ThreadKey("C1", "61409560857", "")
    await store.ledger.confirm_many(ACCOUNT, [Confirmation(row, "111.000001", key, "111.000001")])
    assert await store.ledger.backlog(ACCOUNT, "C1") == []
    entry = await store.threads.get(ACCOUNT, key)
    assert entry is not None
    assert (entry.thread_ts, entry.last_sms_timestamp) == ("111.000001", 100)
    assert await store.ledger.posts(ACCOUNT, ["a"]) == {
        "a": PostRef("C1", "111.000001", "111.000001")
    }


async def test_claiming_several_takes_only_the_pending_ones_in_one_go(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms(n, 100) for n in "abcd"], ["C1"] * 4, 10)
    assert await store.ledger.claim(ACCOUNT, "b", "other replica") is not None
    await store.ledger.mark_failed(ACCOUNT, "c", "is_archived")
    took = await store.ledger.claim_many(ACCOUNT, ["a", "b", "c", "d", "unknown"], "me")
    assert set(took) == {"a", "d"}  # b is another's, c is done, no row is named "unknown"
    assert took["a"] == took["d"]  # one transaction, one claim time
    rows = {row.sms.document_id: row for row in await store.ledger.backlog(ACCOUNT, "C1")}
    assert {ident: (row.state, row.claimed_by) for ident, row in rows.items()} == {
        "a": ("posting", "me"),
        "b": ("posting", "other replica"),
        "d": ("posting", "me"),
    }
    assert rows["a"].claimed_at == took["a"]
    assert await store.ledger.claim_many(ACCOUNT, ["a", "d"], "me") == {}  # already claimed
    assert await store.ledger.claim_many(ACCOUNT, [], "me") == {}


async def test_failed_rows_keep_their_reason(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("a")], ["C1"], 10)
    await store.ledger.mark_failed(ACCOUNT, "a", "is_archived")
    assert (await store.ledger.counts(ACCOUNT))["failed"] == 1
    assert await store.ledger.backlog(ACCOUNT, "C1") == []


async def test_upgrade_is_idempotent(store: Store) -> None:
    assert await store.upgrade() == (LATEST, LATEST)
    assert await store.version() == LATEST


async def test_a_database_newer_than_the_code_is_refused(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(update(schema_version).values(version=LATEST + 1))
    with pytest.raises(StoreError, match="newer than this smsbridge"):
        await store.upgrade()


async def test_one_lease_holder_at_a_time_and_takeover_after_expiry(store: Store) -> None:
    assert await store.leases.acquire(ACCOUNT, "a", ttl=0.5)
    assert not await store.leases.acquire(ACCOUNT, "b", ttl=0.5)
    assert await store.leases.acquire(ACCOUNT, "a", ttl=0.5)  # renewal
    assert await store.leases.holder(ACCOUNT) == "a"
    # Expiry is judged by the database's clock: wait until it says the lease is over.
    while await store.leases.holder(ACCOUNT) is not None:  # noqa: ASYNC110 - a clock, no event
        await asyncio.sleep(0.05)
    assert await store.leases.acquire(ACCOUNT, "b", ttl=30)
    assert not await store.leases.acquire(ACCOUNT, "a", ttl=30)


async def test_a_released_lease_is_taken_at_once(store: Store) -> None:
    assert await store.leases.acquire(ACCOUNT, "a", ttl=60)
    await store.leases.release(ACCOUNT, "b")  # not b's to release
    assert not await store.leases.acquire(ACCOUNT, "b", ttl=60)
    await store.leases.release(ACCOUNT, "a")
    assert await store.leases.acquire(ACCOUNT, "b", ttl=60)


async def test_leases_are_per_account(store: Store) -> None:
    assert await store.leases.acquire(ACCOUNT, "a", ttl=60)
    assert await store.leases.acquire("other@reseller", "b", ttl=60)


async def test_the_last_poll_is_shared(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [], [], 10)
    assert await store.cursors.last_poll(ACCOUNT) is None
    await store.cursors.record_poll(ACCOUNT)
    assert await store.cursors.last_poll(ACCOUNT) is not None


async def test_upgrading_a_version_1_database_keeps_its_data(database_url: str) -> None:
    from smsbridge.store import schema

    opened = Store.open(database_url)
    try:
        # Bring a fresh database to version 1 only, as the first release left it ...
        async with opened.engine.begin() as conn:
            await conn.run_sync(lambda sync: schema.schema_version.create(sync))
            await conn.execute(schema.schema_version.insert().values(version=1))
            await schema.UPGRADES[0](conn)
            await conn.execute(
                schema.ledger.insert().values(
                    account=ACCOUNT,
                    document_id="old",
                    state="posted",
                    channel="C1",
                    sender="614",
                    sms_timestamp=5,
                    text="from v1",
                    received_at=1.0,
                )
            )
        # ... then upgrade it.
        assert await opened.upgrade() == (1, LATEST)
        assert (await opened.ledger.counts(ACCOUNT))["posted"] == 1  # the v1 row is kept
        assert await opened.leases.acquire(ACCOUNT, "a", ttl=5)
    finally:
        await opened.close()


def test_sqlite_refuses_a_second_writer_process_with_the_fix(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = Store.open(f"sqlite:///{tmp_path / 'one.db'}")
        second = Store.open(f"sqlite:///{tmp_path / 'one.db'}")
        try:
            first.lock_for_single_writer()
            with pytest.raises(StoreError, match="SMSBRIDGE_DATABASE_URL=postgresql://"):
                second.lock_for_single_writer()
            await first.close()
            second.lock_for_single_writer()  # free again once the first is gone
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


async def test_retention_forgets_old_posted_and_unrouted_but_never_what_the_cursor_rereads(
    store: Store,
) -> None:
    await store.ledger.ingest(
        ACCOUNT, [sms("old", 100), sms("lost", 100), sms("bad", 100)], ["C1", None, "C1"], 0
    )
    await store.ledger.mark_failed(ACCOUNT, "bad", "is_archived")
    await store.ledger.ingest(
        ACCOUNT, [sms("newest", 200)], ["C1"], 199
    )  # cursor 199 re-reads second 200
    for document_id in ("old", "newest"):
        await store.ledger.claim(ACCOUNT, document_id)
        [row] = [
            r for r in await store.ledger.backlog(ACCOUNT, "C1") if r.sms.document_id == document_id
        ]
        key = ThreadKey("C1", "614", document_id)
        await store.ledger.confirm_many(ACCOUNT, [Confirmation(row, f"{document_id}.1", key, "t")])
    removed, idle = await store.ledger.prune(ACCOUNT, before=time.time() + 1)
    assert removed == 2  # "old" (posted) and "lost" (unrouted)
    assert idle == 2
    left = {r.sms.document_id for r in await store.ledger.backlog(ACCOUNT, "C1")}
    assert left == set()
    assert (await store.ledger.counts(ACCOUNT))["failed"] == 1  # kept until replayed
    # the SMS the cursor still re-reads is remembered, so it is not taken for new
    assert await store.ledger.ingest(ACCOUNT, [sms("newest", 200)], ["C1"], 199) == ([], [])


async def test_replay_queues_failed_and_newly_routed_sms(store: Store) -> None:
    await store.ledger.ingest(ACCOUNT, [sms("bad"), sms("lost")], ["C1", None], 0)
    await store.ledger.mark_failed(ACCOUNT, "bad", "is_archived")
    queued, left = await store.ledger.replay(
        ACCOUNT, failed=True, unrouted=True, channel_for=lambda _: None
    )
    assert (queued, left) == (1, 1)
    queued, left = await store.ledger.replay(
        ACCOUNT, failed=True, unrouted=True, channel_for=lambda _: "C2"
    )
    assert (queued, left) == (1, 0)
    assert {r.sms.document_id for r in await store.ledger.backlog(ACCOUNT, "C1")} == {"bad"}
    assert {r.sms.document_id for r in await store.ledger.backlog(ACCOUNT, "C2")} == {"lost"}


async def test_invalid_records_are_kept_once_with_raw_json_and_reason(store: Store) -> None:
    bad = read_message({"from": "61", "documentId": "x" * 500, "timestamp": 7})
    assert isinstance(bad, InvalidSms)
    _, first = await store.ledger.ingest(ACCOUNT, [sms("a")], ["C1"], 10, [bad])
    _, again = await store.ledger.ingest(ACCOUNT, [], [], 10, [bad])  # the gateway sends it again
    assert (first, again) == ([bad], [])
    assert (await store.ledger.counts(ACCOUNT))["invalid"] == 1
    assert [r.sms.document_id for r in await store.ledger.backlog(ACCOUNT, "C1")] == ["a"]


async def test_the_outbox_records_a_slack_message_once(store: Store) -> None:
    args = ("C1", "1700000000.000100", None, "U0JANE", "61409560857", "61411001001", "hi")
    assert await store.outbox.record(ACCOUNT, *args)
    assert not await store.outbox.record(ACCOUNT, *args)  # Slack delivered the event again
    [queued] = await store.outbox.waiting(ACCOUNT)
    assert (queued.state, queued.text, queued.line) == ("queued", "hi", "61411001001")
    assert await store.outbox.claim(queued.seq, "me")
    assert not await store.outbox.claim(queued.seq, "another replica")


async def test_a_sent_sms_joins_the_thread_map_under_its_provider_id(store: Store) -> None:
    await store.outbox.record(
        ACCOUNT, "C1", "1700000000.000200", "1700000000.000100", "U0JANE", "61409560857", None, "x"
    )
    [queued] = await store.outbox.waiting(ACCOUNT)
    await store.outbox.claim(queued.seq, "me")
    await store.outbox.sent(queued, "51750a01e4b0d1406c9c5fdb")
    assert await store.outbox.waiting(ACCOUNT) == []
    # The customer's answer carries that id as its origin: it belongs in the same thread.
    key = ThreadKey("C1", "61409560857", "51750a01e4b0d1406c9c5fdb")
    entry = await store.threads.get(ACCOUNT, key)
    assert entry is not None
    assert entry.thread_ts == "1700000000.000100"


async def test_opt_outs_are_per_line_and_can_be_lifted(store: Store) -> None:
    await store.optouts.set(ACCOUNT, "61411001001", "61409560857", out=True)
    await store.optouts.set(ACCOUNT, "61411001001", "61409560857", out=True)  # said twice
    assert await store.optouts.is_out(ACCOUNT, "61411001001", "61409560857")
    assert not await store.optouts.is_out(ACCOUNT, "61400000002", "61409560857")
    await store.optouts.set(ACCOUNT, "61411001001", "61409560857", out=False)
    assert not await store.optouts.is_out(ACCOUNT, "61411001001", "61409560857")


async def test_a_push_and_a_poll_of_one_sms_at_once_keep_one_under_two_ids(store: Store) -> None:
    store.ledger.match_twins = True
    for round_ in range(5):  # the same race, a few times
        stamp = 1_700_000_000 + round_
        polled = InboundSms(sender="614", document_id=f"poll{round_}", timestamp=stamp, text="hi")
        pushed = InboundSms(sender="614", document_id=f"push{round_}", timestamp=stamp, text="hi")
        await asyncio.gather(
            store.ledger.ingest(ACCOUNT, [polled], ["C1"], stamp - 1),
            store.ledger.ingest_pushed_many([(ACCOUNT, pushed, "C1")]),
        )
    counts = await store.ledger.counts(ACCOUNT)
    assert (counts["pending"], counts["twin"]) == (5, 5)


@pytest.mark.postgres
async def test_a_claim_finds_its_row_by_key_however_large_the_backlog(
    postgres_store: Store,
) -> None:
    # A new database taking a large backlog has no planner statistics until autovacuum looks,
    # a minute later: the ledger refreshes them itself, so claims (and confirms) look their
    # row up by key instead of walking every row of the account (which made the drain slow
    # down as the backlog grew).
    store = postgres_store
    backlog = [sms(str(n), 100 + n // 40) for n in range(3000)]
    await store.ledger.ingest(ACCOUNT, backlog, ["C1"] * len(backlog), 10)
    values = {
        "b_account": ACCOUNT,
        "b_ids": ["1498", "1499"],
        "b_posted_ts": ["1.1", "1.2"],
        "b_in_threads": ["1.1", "1.1"],
        "b_claim_ids": ["1501", "1502"],
        "b_now": 1.0,
        "b_holder": "me",
        "b_t_channels": ["C1"],
        "b_t_senders": ["61409560857"],
        "b_t_origins": [""],
        "b_t_ts": ["1.1"],
        "b_t_stamps": [100],
    }
    for statement in (_CLAIM_ALL, _CONFIRM_ALL):  # claims; a group confirm (and its claims)
        compiled = statement.compile(dialect=store.engine.dialect)
        args = tuple(values[name] for name in compiled.positiontup or ())
        async with store.engine.connect() as conn:
            answer = await conn.exec_driver_sql(f"EXPLAIN {compiled}", args)
            plan = "\n".join(str(row[0]) for row in answer)
        assert "Seq Scan on ledger" not in plan, plan
        assert "ledger_account_document" in plan, plan  # each row by (account, documentId)
        assert "ledger_backlog" not in plan, plan
        assert "ledger_twin" not in plan, plan
    assert await store.ledger.claim(ACCOUNT, "1500") is not None


@pytest.mark.postgres
async def test_a_group_confirm_on_a_dropped_connection_fails_and_the_next_gets_a_new_one(
    postgres_store: Store, postgres_database: str
) -> None:
    # The group confirm runs straight through the driver: a connection the server dropped (a
    # restart, a failover) must fail that commit as SQLAlchemy would, and leave the pool.
    import asyncpg

    store = postgres_store
    await store.ledger.ingest(ACCOUNT, [sms("a1", 100)], ["C1"], 10)
    [row] = await store.ledger.backlog(ACCOUNT, "C1")
    assert await store.ledger.claim(ACCOUNT, "a1", "me") is not None
    async with store.engine.connect() as conn:  # the pool hands this one out next
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    admin = await asyncpg.connect(postgres_database, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    confirm = [Confirmation(row, "1.1", ThreadKey("C1", "61409560857", ""), "1.1")]
    with pytest.raises(DBAPIError):
        await store.ledger.confirm_many(ACCOUNT, confirm, holder="me")
    [row] = await store.ledger.backlog(ACCOUNT, "C1")
    assert row.state == "posting"  # not confirmed: its post stays in doubt
    await store.ledger.confirm_many(ACCOUNT, confirm, holder="me")  # a new connection
    assert list(await store.ledger.posts(ACCOUNT, ["a1"])) == ["a1"]
