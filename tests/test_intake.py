"""Pushed SMS into the ledger: many per transaction under load, each durable before its
answer, the same SMS twice in one transaction stored once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from smsbridge.models import InboundSms
from smsbridge.pipeline.intake import PushIntake
from smsbridge.store.ledger import Ledger
from smsbridge.store.store import Store


class CountingLedger(Ledger):
    """The real ledger, counting its transactions of pushed SMS."""

    transactions = 0

    async def ingest_pushed_many(
        self, pushed: Sequence[tuple[str, InboundSms, str | None]]
    ) -> list[bool]:
        self.transactions += 1
        return await super().ingest_pushed_many(pushed)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'intake.db'}")
    await opened.upgrade()
    yield opened
    await opened.close()


def sms(index: int) -> InboundSms:
    return InboundSms(
        sender="61409560857",
        recipient="61411001001",
        document_id=f"push-{index}",
        timestamp=int(time.time()),
        text=f"burst {index}",
    )


async def test_a_burst_shares_transactions_and_every_sms_is_stored_once(store: Store) -> None:
    ledger = CountingLedger(store.engine, store.cursors, store.threads)
    intake = PushIntake(ledger)
    pushes = [sms(index) for index in range(100)] + [sms(7)]  # the gateway retried one
    news = await asyncio.gather(*(intake.store("acct", one, "C1") for one in pushes))
    assert news.count(True) == 100
    assert news[-1] is False  # the retry of push-7, in the same transaction, is known
    assert (await store.ledger.counts("acct"))["pending"] == 100
    assert ledger.transactions < 10


async def test_a_failed_transaction_fails_every_push_in_it_and_stores_none(
    store: Store,
) -> None:
    intake = PushIntake(store.ledger)
    async with store.engine.begin() as conn:  # a database that cannot take an SMS
        await conn.execute(text("ALTER TABLE ledger RENAME TO ledger_elsewhere"))
    results = await asyncio.gather(
        *(intake.store("acct", sms(index), "C1") for index in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(result, DBAPIError) for result in results)  # each push: 503
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE ledger_elsewhere RENAME TO ledger"))
    assert sum((await store.ledger.counts("acct")).values()) == 0
