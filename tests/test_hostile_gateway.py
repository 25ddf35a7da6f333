"""A gateway that sends odd data, in one event loop: real HTTP to the stand-ins, real SQLite.
Nothing it sends may stop the bridge, hide later SMS, or be lost without a trace."""

from __future__ import annotations

import logging
import time

import pytest

from conftest import OPS, MakeHarness, Served
from smsbridge.models import InboundSms
from smsbridge.privacy import account_label
from smsbridge.provider.cursor import FUTURE_TOLERANCE
from smsbridge.slash.answers import status_answer

ALICE = "61409560857"
YEAR = 365 * 86_400


async def test_an_sms_stamped_a_year_ahead_is_posted_and_later_sms_still_arrive(
    served: Served, make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_harness()
    future = served.provider.add(ALICE, "from the future", timestamp=int(time.time()) + YEAR)
    await harness.cycle()
    assert served.slack.document_ids() == [future.document_id]
    cursor = await harness.bridge.store.cursors.get(harness.account)
    assert cursor is not None
    assert cursor <= time.time() + FUTURE_TOLERANCE  # the cursor did not follow it
    assert "ahead of the provider's present" in caplog.text
    later = served.provider.add(ALICE, "an ordinary SMS, later")
    await harness.cycle()
    assert served.slack.document_ids() == [future.document_id, later.document_id]


async def test_half_an_emoji_in_one_sms_neither_stalls_the_page_nor_is_lost(
    served: Served, make_harness: MakeHarness
) -> None:
    # A gateway that joined a long SMS part by part split an emoji's surrogate pair: the
    # page carries one half as a JSON escape. Storing it failed the whole page, every poll.
    harness = await make_harness()
    broken = served.provider.add(ALICE, "see you at 5 \ud83d")
    after = served.provider.add(ALICE, "and an ordinary SMS beside it")
    await harness.cycle()
    assert served.slack.document_ids() == [broken.document_id, after.document_id]
    assert "see you at 5 \ufffd" in served.slack.all_messages()[0]["blocks"][1]["text"]["text"]
    assert await harness.bridge.store.cursors.get(harness.account) == after.timestamp - 1


async def test_the_providers_own_clock_is_the_present(
    served: Served, make_harness: MakeHarness
) -> None:
    # The gateway's clock runs an hour ahead of ours, and its Date header says so: its SMS
    # are stamped by that clock and are not from the future.
    harness = await make_harness()
    ahead = time.time() + 3600
    served.provider.clock = lambda: ahead  # stamps and the Date header
    first = served.provider.add(ALICE, "stamped by the gateway's clock")
    await harness.cycle()
    assert served.slack.document_ids() == [first.document_id]
    assert await harness.bridge.store.cursors.get(harness.account) == first.timestamp - 1


async def test_a_broken_record_is_kept_once_counted_and_said_once(
    served: Served, make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_harness()
    served.provider.bad_records.append(
        {"from": ALICE, "documentId": "x" * 10_000, "timestamp": int(time.time()), "text": "?"}
    )
    good = served.provider.add(ALICE, "beside the broken one")
    with caplog.at_level(logging.ERROR):
        for _ in range(3):  # the gateway keeps sending it
            await harness.cycle()
    assert served.slack.document_ids() == [good.document_id]
    said = [r for r in caplog.records if "not a readable SMS" in r.getMessage()]
    assert len(said) == 1
    assert "x" * 50 not in said[0].getMessage()
    assert (await harness.bridge.store.ledger.counts(harness.account))["invalid"] == 1
    metrics = harness.bridge.metrics.exposition().decode()
    label = account_label("demo@reseller", None)
    assert f'smsbridge_messages_invalid_total{{account="{label}"}} 1.0' in metrics
    status = status_answer(await harness.bridge.status(), time.time())
    assert "Invalid from the gateway: 1" in status.text


async def test_a_stored_sms_no_calendar_can_show_does_not_stall_its_channel(
    served: Served, make_harness: MakeHarness
) -> None:
    # A row an older release stored (before stamps were bounded), stamped 10^15.
    harness = await make_harness()
    odd = InboundSms.model_construct(
        sender=ALICE, recipient=None, document_id="d1", origin_document_id=None,
        timestamp=10**15, text="stamped in the year 31 million",
    )  # fmt: skip
    await harness.bridge.store.ledger.ingest(harness.account, [odd], [OPS], 0)
    after = served.provider.add(ALICE, "after it")
    await harness.cycle()
    counts = await harness.bridge.store.ledger.counts(harness.account)
    assert counts["pending"] + counts["posting"] == 0
    assert served.slack.document_ids() == ["d1", after.document_id]
    header = served.slack.channels[OPS].messages[0]["blocks"][0]["elements"][0]["text"]
    assert "timestamp 1000000000000000" in header
