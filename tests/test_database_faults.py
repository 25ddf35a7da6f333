"""The database misbehaving: a long lock held by someone else, a failed statement. What the
bridge says about it must be true, and must not carry SMS texts or numbers."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from conftest import MakeHarness
from smsbridge.store.schema import ledger
from smsbridge.store.store import Store


async def test_on_sqlite_a_delayed_lease_renewal_says_what_happened_and_polling_goes_on(
    make_harness: MakeHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_harness()
    keeper = harness.lane.keeper
    assert keeper.held
    # A long transaction elsewhere (here: an exclusive lock) delays the renewal past the
    # database's busy timeout.
    blocker = sqlite3.connect(tmp_path / "bridge.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.INFO):
        try:
            assert await keeper.renew()  # still ours: no other process can use this file
        finally:
            blocker.rollback()
            blocker.close()
        assert "another" not in caplog.text
        assert "(database is locked); polling goes on, since no other process" in caplog.text
        assert await keeper.renew()
        assert "can be renewed again" in caplog.text


async def test_a_failed_statement_does_not_carry_its_values(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.upgrade()
    row = {
        "account": "a@reseller",
        "document_id": "d1",
        "state": "pending",
        "sender": "61409560857",
        "sms_timestamp": 1,
        "text": "the gate code is 4521",
        "received_at": 1.0,
    }
    try:
        async with store.engine.begin() as conn:
            await conn.execute(ledger.insert().values(**row))
        with pytest.raises(IntegrityError) as caught:
            async with store.engine.begin() as conn:
                await conn.execute(ledger.insert().values(**row))
    finally:
        await store.close()
    assert "4521" not in str(caught.value)
    assert "61409560857" not in str(caught.value)
