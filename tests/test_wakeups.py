"""Wake-ups between replicas (PostgreSQL LISTEN/NOTIFY), through a connection a test can cut."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import make_url

from processes import TcpProxy
from smsbridge.store.store import Store
from smsbridge.store.wakeups import OUTBOUND, PUSHED, Wakeups

pytestmark = pytest.mark.postgres


async def test_a_listener_hears_each_kind_and_reconnects_after_losing_its_connection(
    postgres_database: str,
) -> None:
    real = make_url(postgres_database)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    listening = Store.open(
        real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )
    telling = Store.open(postgres_database)
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_wake(kind: str, account: str) -> None:
        await heard.put((kind, account))

    async def tell_until_heard(kind: str, account: str) -> tuple[str, str]:
        """Notify until the listener hears it (it may still be connecting)."""
        while True:
            await telling.wakeups.notify(kind, account)
            try:
                return await asyncio.wait_for(heard.get(), 0.2)
            except TimeoutError:
                continue

    listener = asyncio.create_task(listening.wakeups.listen(on_wake))
    try:
        assert await asyncio.wait_for(tell_until_heard(PUSHED, "acct"), 10) == (PUSHED, "acct")
        await proxy.stop()  # the listening connection dies
        await proxy.start()
        heard_after = await asyncio.wait_for(tell_until_heard(OUTBOUND, "acct"), 30)
        assert heard_after == (OUTBOUND, "acct")
        assert not listener.done()
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await proxy.stop()
        await listening.close()
        await telling.close()


async def test_notifications_that_are_not_ours_are_ignored(postgres_database: str) -> None:
    store = Store.open(postgres_database)
    heard: list[tuple[str, str]] = []

    async def on_wake(kind: str, account: str) -> None:
        heard.append((kind, account))

    listener = asyncio.create_task(store.wakeups.listen(on_wake))
    try:
        from sqlalchemy import text

        from smsbridge.store.wakeups import CHANNEL

        for _ in range(50):  # until the listener is connected, the good one arrives
            async with store.engine.begin() as conn:
                for junk in ("not json", "[1]", '{"kind": "drop tables", "account": "a"}'):
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": junk},
                    )
            await store.wakeups.notify(PUSHED, "a")
            await asyncio.sleep(0.1)
            if heard:
                break
        assert set(heard) == {(PUSHED, "a")}
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await store.close()


async def test_on_sqlite_there_is_nothing_to_notify(tmp_path: object) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/w.db")
    assert isinstance(store.wakeups, Wakeups)
    assert not store.wakeups.enabled
    await store.wakeups.notify(PUSHED, "a")  # no error, nothing to do
    await store.close()
