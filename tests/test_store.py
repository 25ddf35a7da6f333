"""The store's promises, on SQLite and on PostgreSQL (same queries, same cases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from smsbridge.errors import StoreError
from smsbridge.models import InboundSms, ThreadKey
from smsbridge.store.schema import LATEST, schema_version
from smsbridge.store.store import Store, async_url

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


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = Store.open(database_url)
    await opened.upgrade()
    yield opened
    await opened.close()


def test_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///./smsbridge.db") == "sqlite+aiosqlite:///./smsbridge.db"
    assert async_url("postgres://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"


async def test_ingest_dedupes_by_document_id(store: Store) -> None:
    first = await store.ingest(ACCOUNT, [sms("a"), sms("b")], ["C1", "C1"], 99)
    again = await store.ingest(ACCOUNT, [sms("b"), sms("c")], ["C1", "C1"], 99)
    assert [m.document_id for m in first] == ["a", "b"]
    assert [m.document_id for m in again] == ["c"]
    assert [row.sms.document_id for row in await store.backlog(ACCOUNT, "C1")] == ["a", "b", "c"]


async def test_accounts_are_kept_apart(store: Store) -> None:
    await store.ingest(ACCOUNT, [sms("a")], ["C1"], 10)
    assert [m.document_id for m in await store.ingest("other@reseller", [sms("a")], ["C1"], 5)] == [
        "a"
    ]
    assert (await store.cursor(ACCOUNT), await store.cursor("other@reseller")) == (10, 5)


async def test_cursor_never_moves_backwards(store: Store) -> None:
    assert await store.cursor(ACCOUNT) is None
    await store.ingest(ACCOUNT, [], [], 500)
    await store.ingest(ACCOUNT, [], [], 400)
    assert await store.cursor(ACCOUNT) == 500


async def test_unrouted_rows_are_kept_but_never_delivered(store: Store) -> None:
    await store.ingest(ACCOUNT, [sms("a")], [None], 10)
    assert await store.backlog_channels(ACCOUNT) == []
    assert (await store.counts(ACCOUNT))["unrouted"] == 1


async def test_claim_is_exclusive_and_confirm_records_the_thread(store: Store) -> None:
    await store.ingest(ACCOUNT, [sms("a", 100)], ["C1"], 10)
    assert await store.claim(ACCOUNT, "a") is not None
    assert await store.claim(ACCOUNT, "a") is None  # a second claimant loses
    [row] = await store.backlog(ACCOUNT, "C1")
    assert row.state == "posting"
    key = ThreadKey("C1", "61409560857", "")
    await store.confirm(ACCOUNT, row, "111.000001", key, "111.000001")
    assert await store.backlog(ACCOUNT, "C1") == []
    entry = await store.thread(ACCOUNT, key)
    assert entry is not None
    assert (entry.thread_ts, entry.last_sms_timestamp) == ("111.000001", 100)
    assert await store.delivered(ACCOUNT) == [("a", "C1", "111.000001")]


async def test_failed_rows_keep_their_reason(store: Store) -> None:
    await store.ingest(ACCOUNT, [sms("a")], ["C1"], 10)
    await store.mark_failed(ACCOUNT, "a", "is_archived")
    assert (await store.counts(ACCOUNT))["failed"] == 1
    assert await store.backlog(ACCOUNT, "C1") == []


async def test_upgrade_is_idempotent(store: Store) -> None:
    assert await store.upgrade() == (LATEST, LATEST)
    assert await store.version() == LATEST


async def test_a_database_newer_than_the_code_is_refused(store: Store) -> None:
    async with store._engine.begin() as conn:
        await conn.execute(update(schema_version).values(version=LATEST + 1))
    with pytest.raises(StoreError, match="newer than this smsbridge"):
        await store.upgrade()
