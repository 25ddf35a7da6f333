"""SMS written in Slack going out through the provider: once, with the answer threaded back,
and with every refusal explained. Real HTTP to both stand-ins, a real SQLite file."""

from __future__ import annotations

import asyncio
import time

from pydantic import SecretStr
from sqlalchemy import update

from conftest import OPS, OPS_LINE, PASSWORD, USERNAME, FakeClock, Harness, MakeHarness, Served
from smsbridge.config import ProviderSettings
from smsbridge.pipeline.sender import IN_DOUBT_SETTLE
from smsbridge.sim.provider import Account, Fault
from smsbridge.store.outbox import OutState
from smsbridge.store.schema import outbound

CUSTOMER = "61409560857"


async def reply_in_thread(served: Served, harness: Harness, text: str) -> tuple[str, str]:
    """The customer texts in, the bridge posts it, and Jane answers in its Slack thread."""
    served.provider.add(CUSTOMER, "Can you come at 10?", recipient=OPS_LINE)
    await harness.cycle()
    parent = served.slack.top_level(OPS)[-1]["ts"]
    reply = served.slack.say(OPS, "U0JANE", text, thread_ts=parent)
    recorded = await harness.bridge.store.outbox.record(
        harness.account, OPS, reply, parent, "U0JANE", CUSTOMER, OPS_LINE, text
    )
    assert recorded
    return parent, reply


async def test_a_reply_goes_out_once_and_the_answer_threads_back(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    parent, reply = await reply_in_thread(served, harness, "Yes, see you at 10")
    await harness.lane.sender.kick()
    await harness.lane.sender.kick()  # a second wake-up sends nothing more
    await harness.lane.sender.idle()
    [sent] = served.provider.sent
    assert (sent.recipient, sent.sender, sent.text) == (CUSTOMER, OPS_LINE, "Yes, see you at 10")
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == reply)
    assert message["reactions"] == ["white_check_mark"]
    # The customer answers the SMS: it lands in the same Slack thread.
    served.provider.reply_to(sent, "Great, thanks")
    await harness.cycle()
    texts = [
        m["blocks"][-1]["text"]["text"]
        for m in served.slack.replies(OPS, parent)
        if m.get("blocks")
    ]
    assert "Great, thanks" in texts


async def test_out_of_credit_is_explained_in_the_thread_and_nothing_is_sent(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.provider.accounts[USERNAME] = Account(PASSWORD, credit=0)
    parent, reply = await reply_in_thread(served, harness, "hello")
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    assert served.provider.sent == []
    explained = [m["text"] for m in served.slack.replies(OPS, parent) if "not sent" in m["text"]]
    assert explained
    assert "out of credit" in explained[0]
    row = await harness.bridge.store.outbox.get(OPS, reply)
    assert row is not None
    assert row.state == OutState.FAILED


async def test_a_send_without_an_answer_is_found_in_the_providers_list_not_sent_twice(
    served: Served, make_harness: MakeHarness
) -> None:
    provider = ProviderSettings(
        url=served.provider_url, username=USERNAME, password=SecretStr(PASSWORD), timeout=0.5
    )
    harness = await make_harness(provider=provider)
    served.provider.slow_seconds = 1.0
    _, reply = await reply_in_thread(served, harness, "are you there?")
    served.provider.inject(Fault.SLOW)  # the SMS goes out; its answer comes too late
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()  # in doubt: claimed, not sent again, holding nothing up
    row = await harness.bridge.store.outbox.get(OPS, reply)
    assert row is not None
    assert row.state == OutState.SENDING
    await asyncio.wait_for(served.provider.wait_for_sent(1), 10)  # the gateway lists it
    await harness.lane.sender.kick()  # the next wake-up (after a poll) looks again
    await harness.lane.sender.idle()
    [sent] = served.provider.sent  # one copy, not two
    row = await harness.bridge.store.outbox.get(OPS, reply)
    assert row is not None
    assert (row.state, row.provider_id) == (OutState.SENT, sent.document_id)
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == reply)
    assert message["reactions"] == ["white_check_mark"]


async def claimed_long_ago(harness: Harness, seq: int) -> None:
    """The claim of a process that stopped mid-send, long enough ago to be settled."""
    async with harness.bridge.store.engine.begin() as conn:
        await conn.execute(
            update(outbound)
            .where(outbound.c.seq == seq)
            .values(state="sending", claimed_at=time.time() - 2 * IN_DOUBT_SETTLE)
        )


async def test_an_sms_in_flight_when_a_process_stopped_and_never_sent_is_sent_once(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    await reply_in_thread(served, harness, "in flight")
    [queued] = await harness.bridge.store.outbox.waiting(harness.account)
    await claimed_long_ago(harness, queued.seq)
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    [sent] = served.provider.sent  # not in the provider's list: sent now, once
    assert sent.text == "in flight"


async def test_an_sms_in_flight_when_a_process_stopped_that_went_out_is_not_sent_again(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    _, reply = await reply_in_thread(served, harness, "went out before the crash")
    [queued] = await harness.bridge.store.outbox.waiting(harness.account)
    await claimed_long_ago(harness, queued.seq)
    served.provider.send(  # the provider got it just before the process died
        {
            "username": USERNAME,
            "password": PASSWORD,
            "recipient": CUSTOMER,
            "sender": OPS_LINE,
            "text": "went out before the crash",
        }
    )
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    assert len(served.provider.sent) == 1
    row = await harness.bridge.store.outbox.get(OPS, reply)
    assert row is not None
    assert (row.state, row.provider_id) == (OutState.SENT, served.provider.sent[0].document_id)


async def with_status_query(served: Served, make_harness: MakeHarness, clock: FakeClock) -> Harness:
    provider = ProviderSettings(
        url=served.provider_url,
        username=USERNAME,
        password=SecretStr(PASSWORD),
        status_query=True,
    )
    return await make_harness(provider=provider, clock=clock)


async def ask_later(served: Served, harness: Harness, clock: FakeClock, seconds: float) -> None:
    """Time passes (for the bridge and the gateway alike), then the sender wakes up."""
    clock.advance(seconds)
    served.provider.clock = lambda: time.time() + seconds + 5
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()


async def test_a_delivered_sms_says_so_on_the_persons_message(
    served: Served, make_harness: MakeHarness
) -> None:
    clock = FakeClock(time.time())
    harness = await with_status_query(served, make_harness, clock)
    _, reply = await reply_in_thread(served, harness, "see you at 10")
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    [sent] = served.provider.sent
    served.provider.statuses[sent.document_id] = 11  # sent, not yet delivered
    await ask_later(served, harness, clock, 3)
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == reply)
    assert message["reactions"] == ["white_check_mark"]
    served.provider.statuses[sent.document_id] = 2  # delivered
    await ask_later(served, harness, clock, 60)
    assert message["reactions"] == ["white_check_mark", "mailbox_with_mail"]


async def test_an_undelivered_sms_is_explained_in_words(
    served: Served, make_harness: MakeHarness
) -> None:
    clock = FakeClock(time.time())
    harness = await with_status_query(served, make_harness, clock)
    parent, _ = await reply_in_thread(served, harness, "hello")
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    served.provider.statuses[served.provider.sent[0].document_id] = 5
    await ask_later(served, harness, clock, 3)
    explained = [
        m["text"] for m in served.slack.replies(OPS, parent) if "not delivered" in m["text"]
    ]
    assert explained == [
        ":x: This SMS was sent, but not delivered: the number cannot receive it (status 5)"
    ]


def test_status_checks_thin_out_and_stop_after_49_hours() -> None:
    from smsbridge.provider.statuses import GIVE_UP_AFTER, next_check

    sent = 1_000_000.0
    assert next_check(sent, sent) == sent + 2
    assert next_check(sent, sent + 5) == sent + 30
    later = next_check(sent, sent + 7 * 3600)
    assert later is not None
    assert later > sent + 7 * 3600
    assert next_check(sent, sent + GIVE_UP_AFTER) is None


async def test_a_passing_provider_failure_shows_retrying_then_sent(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    _, reply = await reply_in_thread(served, harness, "try again")
    served.provider.inject(Fault.HTTP_500)  # refused for now: not sent, safe to retry
    await harness.lane.sender.kick()
    await harness.lane.sender.idle()
    assert [sent.text for sent in served.provider.sent] == ["try again"]
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == reply)
    assert message["reactions"] == ["repeat", "white_check_mark"]
