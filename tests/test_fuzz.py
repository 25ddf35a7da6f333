"""Fuzz the poll cycle with arbitrary provider answers: nothing crashes the poller, the cursor
never moves past an SMS that is not safely in the ledger, every record it cannot read is kept
as invalid, and the cursor never follows a stamp from the future.

The real ProviderClient parses each answer; only its transport is swapped for httpx's
MockTransport, so that hypothesis can try thousands of bodies without a server round trip each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from smsbridge.errors import ProviderError
from smsbridge.models import InboundSms, InvalidSms, read_message
from smsbridge.pipeline.poller import Poller
from smsbridge.provider.client import ProviderClient
from smsbridge.provider.cursor import latest_second
from smsbridge.store.store import Store

SINCE = 1_700_000_000
accounts = (f"fuzz{n}@reseller" for n in itertools.count())

ids = st.one_of(
    st.integers(0, 2**40), st.text(alphabet="0123456789abcdef", min_size=1, max_size=24)
)
wire_message = st.fixed_dictionaries(
    {
        "from": st.one_of(st.integers(1, 10**12), st.text(max_size=15), st.none()),
        "documentId": st.one_of(ids, st.none(), st.booleans()),
        "timestamp": st.one_of(
            st.integers(SINCE - 5, SINCE + 500),
            st.integers(SINCE + 10**6, 10**16),  # a gateway clock gone wrong
            st.floats(SINCE - 5, SINCE + 500),
            st.text(max_size=5),
            st.none(),
        ),
        "text": st.one_of(st.text(max_size=40), st.none(), st.integers()),
    },
    optional={
        "recipient": st.one_of(ids, st.none()),
        "originDocumentId": st.one_of(ids, st.none(), st.just("")),
    },
)
page = st.fixed_dictionaries(
    {"status": st.sampled_from([0, 0, 0, 1, 3, 9999, "0", None])},
    optional={
        "messages": st.one_of(st.lists(wire_message, max_size=6), st.none(), st.text(max_size=5)),
        "newestMessageTimestamp": st.one_of(st.integers(0, 2 * SINCE), st.none()),
        "hasMoreMessages": st.one_of(st.booleans(), st.none(), st.integers(0, 2)),
    },
)
bodies = st.one_of(page.map(lambda d: json.dumps(d).encode()), st.binary(max_size=80))


async def no_delivery() -> None:
    """Delivery is not under test here: the poller's wake-up call does nothing."""


@pytest.fixture(scope="module")
def loop_and_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, Store]]:
    loop = asyncio.new_event_loop()
    store = Store.open(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}")
    loop.run_until_complete(store.upgrade())
    yield loop, store
    loop.run_until_complete(store.close())
    loop.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, status_code=st.sampled_from([200, 200, 200, 500, 503]))
def test_any_answer_leaves_no_sms_behind_the_cursor(
    loop_and_store: tuple[asyncio.AbstractEventLoop, Store], body: bytes, status_code: int
) -> None:
    loop, store = loop_and_store
    account = next(accounts)  # a fresh account per example: its own cursor and ledger
    client = ProviderClient(
        "http://provider.invalid",
        account,
        SecretStr("pw"),
        transport=httpx.MockTransport(lambda request: httpx.Response(status_code, content=body)),
    )
    poller = Poller(
        account, client, store, no_delivery,
        lambda recipient: "C0FUZZ", poll_interval=5, initial_lookback=0,
        clock=lambda: float(SINCE),
    )  # fmt: skip

    async def scenario() -> tuple[int | None, Any, set[str], int]:
        try:
            report = await poller.poll_once()
        except ProviderError:
            report = None
        finally:
            await client.aclose()
        cursor = await store.cursors.get(account)
        ledgered = {
            row.sms.document_id for row in await store.ledger.backlog(account, "C0FUZZ", limit=1000)
        }
        return cursor, report, ledgered, (await store.ledger.counts(account))["invalid"]

    cursor, report, ledgered, invalid = loop.run_until_complete(scenario())
    if report is None:  # the answer was refused: the cursor must not have moved at all
        assert cursor is None
        return
    parsed = json.loads(body)  # it was accepted, so it was a valid page
    records = [read_message(m) for m in parsed.get("messages") or []]
    good = [r for r in records if isinstance(r, InboundSms)]
    bad = {r.key for r in records if isinstance(r, InvalidSms)}
    assert {sms.document_id for sms in good} <= ledgered  # each readable SMS waits for Slack
    assert invalid == len(bad)  # each unreadable record is kept, once, for a person to see
    latest = latest_second(SINCE)
    stamps = [sms.timestamp for sms in good]
    stamps += [r.timestamp for r in records if isinstance(r, InvalidSms) and r.timestamp]
    newest = max((t for t in stamps if t <= latest), default=SINCE)
    # Never backwards; at most one second past the newest present SMS it holds (that happens
    # only when a whole page shared one second: the API's own limit, stepped over and logged);
    # never following a stamp from the future.
    assert cursor is not None
    assert SINCE <= cursor <= max(SINCE, newest) + 1
