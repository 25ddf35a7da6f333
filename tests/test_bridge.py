"""The bridge end to end in one event loop: real HTTP to both stand-ins, a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr

from conftest import (
    INBOX,
    OPS,
    OPS_LINE,
    OTHER_LINE,
    PASSWORD,
    USERNAME,
    FakeClock,
    MakeHarness,
    MakeSettings,
    Served,
)
from smsbridge.config import ProviderSettings, SlackSettings
from smsbridge.errors import SlackAuthError
from smsbridge.pipeline.delivery import CLAIM_AHEAD
from smsbridge.privacy import mask_number
from smsbridge.sim.provider import Fault

ALICE, BOB = "61409560857", "61412345678"
T0 = int(time.time()) - 86_400  # inside the initial lookback of the test settings


def posted_texts(served: Served, channel: str) -> list[str]:
    return [m["blocks"][-1]["text"]["text"] for m in served.slack.channels[channel].messages]


async def test_each_sms_reaches_its_routed_channel_once(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.provider.add(ALICE, "to ops", recipient=OPS_LINE)
    served.provider.add(BOB, "to the other line", recipient=OTHER_LINE)
    await harness.cycle()
    await harness.cycle()  # the overlap re-reads the newest second: still nothing twice
    assert posted_texts(served, OPS) == ["to ops"]
    assert posted_texts(served, INBOX) == ["to the other line"]
    assert Counter(served.slack.document_ids()).most_common(1)[0][1] == 1
    message = served.slack.channels[OPS].messages[0]
    assert (message["unfurl_links"], message["unfurl_media"]) == (False, False)


async def test_replies_thread_per_sender_and_outbound_message(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    reminder, survey = served.provider.new_id(), served.provider.new_id()
    served.provider.add(ALICE, "yes", origin=reminder, timestamp=T0 + 1000)
    served.provider.add(BOB, "no", origin=reminder, timestamp=T0 + 1001)
    served.provider.add(ALICE, "make it 10?", origin=reminder, timestamp=T0 + 1002)
    served.provider.add(ALICE, "5 stars", origin=survey, timestamp=T0 + 1003)
    served.provider.add(ALICE, "and thanks", origin=reminder, timestamp=T0 + 1004)
    await harness.cycle()
    top = served.slack.top_level(OPS)
    assert [m["blocks"][-1]["text"]["text"] for m in top] == ["yes", "no", "5 stars"]
    thread = served.slack.replies(OPS, top[0]["ts"])
    assert [m["blocks"][-1]["text"]["text"] for m in thread] == ["make it 10?", "and thanks"]
    assert served.slack.replies(OPS, top[1]["ts"]) == []


async def test_a_channel_claims_its_next_sms_ahead_of_its_post_and_no_further(
    served: Served, make_harness: MakeHarness
) -> None:
    # The SMS after the one being posted are claimed already (their claims, written with
    # earlier commits, never keep the channel waiting), and only CLAIM_AHEAD in all: after a
    # kill -9, those are the SMS whose post is in doubt and checked in Slack.
    served.slack.post_delay = 0.2  # the first post is stored, its answer still on the way
    harness = await make_harness()
    expected = [
        served.provider.add(ALICE, f"sms {n}", timestamp=T0 + n).document_id for n in range(8)
    ]
    cycle = asyncio.create_task(harness.cycle())
    await asyncio.wait_for(served.slack.wait_for_sms(1), 10)
    rows = await harness.bridge.store.ledger.backlog(harness.account, OPS)
    assert [row.state for row in rows] == ["posting"] * CLAIM_AHEAD + ["pending"] * (
        len(expected) - CLAIM_AHEAD
    )
    await asyncio.wait_for(cycle, 30)
    assert served.slack.document_ids() == expected  # each once, in order
    assert (await harness.bridge.store.ledger.counts(harness.account))["posted"] == len(expected)


async def test_sms_without_origin_start_a_new_thread_after_idle_hours(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness(thread_idle_hours=1)
    served.provider.add(ALICE, "first", timestamp=T0 + 10_000)
    served.provider.add(ALICE, "30 min later", timestamp=T0 + 10_000 + 1800)
    served.provider.add(ALICE, "2 hours of silence later", timestamp=T0 + 10_000 + 1800 + 7200)
    await harness.cycle()
    top = served.slack.top_level(OPS)
    assert [m["blocks"][-1]["text"]["text"] for m in top] == ["first", "2 hours of silence later"]
    assert [m["blocks"][-1]["text"]["text"] for m in served.slack.replies(OPS, top[0]["ts"])] == [
        "30 min later"
    ]


async def test_threads_survive_a_restart(served: Served, make_harness: MakeHarness) -> None:
    origin = served.provider.new_id()
    first = await make_harness()
    served.provider.add(ALICE, "before restart", origin=origin)
    await first.cycle()
    await first.close()
    second = await make_harness()  # same database file
    served.provider.add(ALICE, "after restart", origin=origin)
    await second.cycle()
    top = served.slack.top_level(OPS)
    assert len(top) == 1
    assert [m["blocks"][-1]["text"]["text"] for m in served.slack.replies(OPS, top[0]["ts"])] == [
        "after restart"
    ]


async def test_unrouted_sms_are_kept_counted_and_logged_once_per_line(
    served: Served,
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = await make_harness(routes={OPS_LINE: OPS})  # no default route
    served.provider.add(ALICE, "routed", recipient=OPS_LINE)
    served.provider.add(ALICE, "lost line 1", recipient=OTHER_LINE)
    with caplog.at_level(logging.ERROR):
        await harness.cycle()
    assert len([r for r in caplog.records if "match no route" in r.getMessage()]) == 1
    caplog.clear()
    served.provider.add(BOB, "lost line 2", recipient=OTHER_LINE)
    with caplog.at_level(logging.ERROR):
        await harness.cycle()
        await harness.cycle()
    counts = await harness.bridge.store.ledger.counts(harness.account)
    assert counts["unrouted"] == 2
    assert counts["posted"] == 1
    assert posted_texts(served, OPS) == ["routed"]
    # later unrouted SMS to the same line add no more noise
    assert [r for r in caplog.records if "match no route" in r.getMessage()] == []


async def test_unrouted_first_time_is_logged_with_the_fix_and_the_line_masked(
    served: Served,
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = await make_harness(routes={OPS_LINE: OPS})
    served.provider.add(ALICE, "a", recipient=OTHER_LINE)
    served.provider.add(ALICE, "b", recipient=OTHER_LINE)
    with caplog.at_level(logging.ERROR):
        await harness.cycle()
    lines = [r.getMessage() for r in caplog.records if "match no route" in r.getMessage()]
    assert len(lines) == 1
    assert "Add that line" in lines[0]
    assert "SMSBRIDGE_ROUTES" in lines[0]
    assert mask_number(OTHER_LINE) in lines[0]
    assert OTHER_LINE not in lines[0]


@pytest.mark.parametrize("inclusive", [True, False], ids=["since-inclusive", "since-exclusive"])
async def test_many_sms_in_few_seconds_across_pages_arrive_once_each(
    served: Served,
    make_harness: MakeHarness,
    inclusive: bool,
) -> None:
    served.provider.inclusive = inclusive
    served.provider.page_size = 7
    harness = await make_harness()
    sent = []
    for i in range(40):
        sent.append(
            served.provider.add(
                ALICE if i % 2 else BOB, f"m{i}", timestamp=T0 + 5000 + i // 6
            ).document_id
        )
    await harness.cycle()
    for i in range(40, 50):  # three more arrive in the last second already read, then more
        second = T0 + 5006 if i < 43 else T0 + 5007
        sent.append(served.provider.add(BOB, f"m{i}", timestamp=second).document_id)
    await harness.cycle()
    assert Counter(served.slack.document_ids()) == Counter(sent)


async def test_the_escaped_text_is_what_slack_receives(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.provider.add(ALICE, "<!channel> click <https://evil.example|your bank>")
    await harness.cycle()
    message = served.slack.channels[OPS].messages[0]
    assert (
        message["blocks"][-1]["text"]["text"]
        == "&lt;!channel&gt; click &lt;https://evil.example|your bank&gt;"
    )
    assert "<!channel>" not in message["text"]


# -- provider faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
async def test_a_provider_fault_moves_no_cursor_and_loses_nothing(
    served: Served, make_harness: MakeHarness, fault: Fault
) -> None:
    # A one-second deadline for a page: a dripped page of ~300 bytes would need 15 s.
    provider = ProviderSettings(
        url=served.provider_url, username=USERNAME, password=SecretStr(PASSWORD), timeout=1.0
    )
    harness = await make_harness(provider=provider)
    served.provider.add(ALICE, "before the fault")
    await harness.cycle()
    cursor = await harness.bridge.store.cursors.get(harness.account)
    served.provider.add(ALICE, "during the fault")
    served.provider.slow_seconds = 0.2
    served.provider.drip_seconds = 0.05
    served.provider.inject(fault)
    poller = harness.lane.poller
    await poller.poll_once() if fault in (
        Fault.SLOW,
        Fault.NEWEST_BACKWARDS,
    ) else await harness.cycle()
    after = await harness.bridge.store.cursors.get(harness.account)
    if fault in (Fault.SLOW, Fault.NEWEST_BACKWARDS):  # answered in time: the page was taken
        counts = await harness.bridge.store.ledger.counts(harness.account)
        assert counts["pending"] + counts["posting"] + counts["posted"] == 2
    else:  # refused: the cursor did not move at all, so the SMS during the fault is still ahead
        assert after == cursor
    await poller.poll_once()  # the next cycle now, without waiting out the backoff
    await harness.lane.delivery.idle()
    assert posted_texts(served, OPS) == ["before the fault", "during the fault"]


async def test_transient_failures_back_off_exponentially(
    served: Served, make_harness: MakeHarness
) -> None:
    clock = FakeClock()
    harness = await make_harness(poll_interval=1.0, clock=clock)
    poller = harness.lane.poller
    served.provider.inject(Fault.HTTP_503, times=3)
    gaps = []
    for _ in range(3):
        await poller.run_job()
        gaps.append(poller.next_attempt_at - clock())
        clock.now = poller.next_attempt_at
    # Full jitter between the interval and interval * 2^n (the growth itself: test_backoff.py)
    assert gaps[0] == 1.0
    assert 1.0 <= gaps[1] <= 2.0
    assert 1.0 <= gaps[2] <= 4.0
    assert len(served.provider.requests) == 3  # the gate held: no request inside a backoff
    await poller.run_job()
    assert poller.last_error is None
    assert await poller.not_ready() is None


async def test_a_rejection_is_logged_once_and_retried_slowly(
    served: Served,
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from smsbridge.sim.provider import Account

    clock = FakeClock()
    harness = await make_harness(clock=clock)
    poller = harness.lane.poller
    served.provider.accounts["demo@reseller"] = Account("another password")
    with caplog.at_level(logging.ERROR):
        for _ in range(4):
            await poller.run_job()
            clock.advance(1)  # the scheduler fires every interval ...
        clock.advance(300)  # ... and after the slow retry period it asks again
        await poller.run_job()
    errors = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(errors) == 1
    assert "SMSBRIDGE_PROVIDER__PASSWORD" in errors[0]
    assert len(served.provider.requests) == 2
    assert await poller.not_ready() == "provider_rejected"


# -- Slack faults -------------------------------------------------------------------------------


async def test_a_429_holds_only_its_channel_until_retry_after(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.slack.force("chat.postMessage", channel=OPS, status=429, retry_after=1)
    served.provider.add(ALICE, "throttled", recipient=OPS_LINE)
    served.provider.add(BOB, "free", recipient=OTHER_LINE)
    await harness.cycle()
    posts = [
        (t, ch, status)
        for t, method, ch, status in served.slack.calls
        if method == "chat.postMessage"
    ]
    limited_at = next(t for t, ch, status in posts if ch == OPS and status == 429)
    retried_at = next(t for t, ch, status in posts if ch == OPS and status == 200)
    inbox_at = next(t for t, ch, status in posts if ch == INBOX and status == 200)
    assert retried_at - limited_at >= 1.0
    assert inbox_at < limited_at + 1.0  # the other channel did not wait
    assert posted_texts(served, OPS) == ["throttled"]


async def test_not_in_channel_joins_and_posts(served: Served, make_harness: MakeHarness) -> None:
    harness = await make_harness()
    assert served.slack.channels[OPS].member is False
    served.provider.add(ALICE, "hello")
    await harness.cycle()
    assert served.slack.channels[OPS].member is True
    assert posted_texts(served, OPS) == ["hello"]
    methods = [method for _, method, ch, _ in served.slack.calls if ch == OPS]
    assert methods == ["chat.postMessage", "conversations.join", "chat.postMessage"]


@pytest.mark.parametrize("problem", ["channel_not_found", "is_archived"])
async def test_a_dead_channel_marks_its_sms_failed_and_others_flow(
    served: Served, make_harness: MakeHarness, problem: str
) -> None:
    if problem == "is_archived":
        served.slack.channels[OPS].archived = True
    else:
        del served.slack.channels[OPS]
    harness = await make_harness()
    served.provider.add(ALICE, "cannot land", recipient=OPS_LINE)
    served.provider.add(BOB, "lands", recipient=OTHER_LINE)
    await harness.cycle()
    counts = await harness.bridge.store.ledger.counts(harness.account)
    assert (counts["failed"], counts["posted"]) == (1, 1)
    assert posted_texts(served, INBOX) == ["lands"]


async def test_invalid_auth_at_start_is_a_clear_fatal_error(
    served: Served, make_settings: MakeSettings
) -> None:
    from conftest import Harness

    harness = Harness(make_settings())
    served.slack.token = "xoxb-rotated"
    with pytest.raises(SlackAuthError, match="SMSBRIDGE_SLACK__BOT_TOKEN"):
        await harness.bridge.start()
    await harness.close()


async def test_invalid_auth_while_running_is_fatal_and_keeps_the_sms(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.slack.token = "xoxb-revoked"
    served.provider.add(ALICE, "hello")
    await harness.cycle()
    assert isinstance(harness.fatal[0], SlackAuthError)
    counts = await harness.bridge.store.ledger.counts(harness.account)
    assert counts["posted"] + counts["failed"] == 0  # kept for when the token is fixed


async def test_a_5xx_is_retried_and_posts_once(served: Served, make_harness: MakeHarness) -> None:
    harness = await make_harness()
    served.slack.force("chat.postMessage", status=503)
    served.provider.add(ALICE, "retry me")
    await harness.cycle()
    assert posted_texts(served, OPS) == ["retry me"]


async def test_a_post_whose_answer_was_lost_is_found_not_repeated(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    origin = served.provider.new_id()
    served.slack.channels[OPS].member = True
    served.provider.add(ALICE, "parent", origin=origin)
    served.provider.add(ALICE, "reply", origin=origin)
    # Both posts reach Slack, but Slack's answers are lost (HTTP 500 after the fact).
    served.slack.force("chat.postMessage", status=500, after_effect=True, times=2)
    await harness.cycle()
    assert served.slack.document_ids() == [
        m.document_id for m in list(served.provider.messages)
    ]  # each exactly once, in order
    top = served.slack.top_level(OPS)
    assert len(top) == 1
    assert len(served.slack.replies(OPS, top[0]["ts"])) == 1
    methods = [method for _, method, _, _ in served.slack.calls]
    assert "conversations.history" in methods  # the parent was looked up ...
    assert "conversations.replies" in methods  # ... and the reply in its thread


async def test_more_than_a_page_in_one_second_is_logged_loudly_and_passed(
    served: Served,
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served.provider.page_size = 5
    harness = await make_harness()
    crowded = [
        served.provider.add(ALICE, f"c{i}", timestamp=T0 + 100).document_id for i in range(8)
    ]
    after = served.provider.add(BOB, "the next second", timestamp=T0 + 101).document_id
    with caplog.at_level(logging.ERROR):
        await harness.cycle()
    assert any("share the second" in r.getMessage() for r in caplog.records)
    posted = served.slack.document_ids()
    assert after in posted  # moved on past the crowded second
    assert set(crowded[:5]) <= set(posted)  # what the API could page to was taken
    assert Counter(posted).most_common(1)[0][1] == 1


async def test_a_per_channel_rate_limit_is_obeyed_and_the_backlog_drains(
    served: Served, make_harness: MakeHarness
) -> None:
    served.slack.post_interval = 0.5  # the stand-in answers 429 to any faster post per channel
    harness = await make_harness()
    sent = [
        served.provider.add(
            ALICE if i % 2 else BOB, f"m{i}", recipient=OPS_LINE if i % 3 else OTHER_LINE
        ).document_id
        for i in range(9)
    ]
    await harness.cycle()
    assert Counter(served.slack.document_ids()) == Counter(sent)
    posts = [
        (t, ch, status)
        for t, method, ch, status in served.slack.calls
        if method == "chat.postMessage"
    ]
    limited = [(t, ch) for t, ch, status in posts if status == 429]
    assert limited, "the test never hit the rate limit"
    for at, channel in limited:  # Retry-After is 1s: nothing to that channel before it elapsed
        assert not [t for t, ch, _ in posts if ch == channel and at < t < at + 1.0]


async def test_a_bridge_quiet_for_longer_than_retention_does_not_repost(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    served.provider.add(ALICE, "the last SMS for a month")
    await harness.cycle()
    await harness.bridge.store.ledger.prune(harness.account, before=time.time() + 86400 * 365)
    await harness.cycle()  # re-reads the last second, as every poll does
    assert posted_texts(served, OPS) == ["the last SMS for a month"]


async def test_replay_posts_failed_sms_once_the_channel_is_fixed(
    served: Served,
    make_harness: MakeHarness,
    tmp_path: Path,
) -> None:
    from processes import bridge_env, finish, smsbridge

    served.slack.channels[OPS].archived = True
    harness = await make_harness()
    served.provider.add(ALICE, "waited for the fix")
    await harness.cycle()
    assert (await harness.bridge.store.ledger.counts(harness.account))["failed"] == 1
    served.slack.channels[OPS].archived = False
    code, out, err = await finish(
        await smsbridge("replay", "--failed", env=bridge_env(served, tmp_path))
    )
    assert code == 0, err
    assert out.startswith("1 SMS queued")
    await harness.cycle()
    assert posted_texts(served, OPS) == ["waited for the fix"]


async def test_replay_unrouted_after_adding_a_route(
    served: Served, make_harness: MakeHarness, tmp_path: Path
) -> None:
    from processes import bridge_env, finish, smsbridge

    harness = await make_harness(routes={OPS_LINE: OPS})
    served.provider.add(ALICE, "to a new line", recipient=OTHER_LINE)
    await harness.cycle()
    env = bridge_env(
        served, tmp_path, SMSBRIDGE_ROUTES=f'{{"{OPS_LINE}": "{OPS}", "{OTHER_LINE}": "{INBOX}"}}'
    )
    code, out, err = await finish(await smsbridge("replay", "--unrouted", env=env))
    assert code == 0, err
    assert out.startswith("1 SMS queued")
    await harness.cycle()
    assert posted_texts(served, INBOX) == ["to a new line"]


async def test_a_large_backlog_is_announced_once_and_its_progress_logged(
    served: Served,
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = await make_harness()
    away = int(time.time()) - 3600  # received an hour ago, while the bridge was down
    for i in range(25):
        served.provider.add(ALICE if i % 2 else BOB, f"backlog {i}", timestamp=away + i)
    served.provider.add(ALICE, "just one", recipient=OTHER_LINE)
    with caplog.at_level(logging.INFO):
        await harness.cycle()
    ops = served.slack.channels[OPS].messages
    assert (
        ops[0]["text"]
        == ":hourglass_flowing_sand: catching up 25 SMS received while the bridge was offline"
    )
    assert "metadata" in ops[0]
    assert ops[0]["metadata"]["event_type"] == "sms_catch_up"
    assert len(served.slack.document_ids()) == 26  # the notice is no SMS
    assert [
        m["text"] for m in served.slack.channels[INBOX].messages if "catching up" in m["text"]
    ] == []
    progress = [r for r in caplog.records if r.getMessage().startswith("catching up in C0OPS")]
    assert progress[-1].getMessage() == "catching up in C0OPS: 25 of 25 SMS posted"


async def test_a_restart_in_the_middle_of_a_catch_up_does_not_announce_it_again(
    served: Served, make_harness: MakeHarness
) -> None:
    away = int(time.time()) - 3600
    for i in range(25):
        served.provider.add(ALICE, f"backlog {i}", timestamp=away + i)
    first = await make_harness()
    served.slack.post_delay = 0.02
    cycle = asyncio.create_task(first.cycle())
    await asyncio.wait_for(served.slack.wait_for_sms(5), 10)
    await first.close()  # the process goes away in the middle of the catch-up
    await asyncio.gather(cycle, return_exceptions=True)
    assert len(served.slack.document_ids()) < 25

    second = await make_harness()  # the same database, as after a restart
    await second.cycle()
    notices = [m for m in served.slack.channels[OPS].messages if "catching up" in m["text"]]
    assert len(notices) == 1
    assert sorted(Counter(served.slack.document_ids()).values()) == [1] * 25

    for i in range(25):  # a new outage later is a new catch-up, announced again
        served.provider.add(BOB, f"later {i}", timestamp=int(time.time()) - 600 + i)
    await second.cycle()
    notices = [m for m in served.slack.channels[OPS].messages if "catching up" in m["text"]]
    assert len(notices) == 2


async def test_a_burst_while_running_is_not_called_a_catch_up(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    for i in range(25):  # a hundred customers answering a broadcast, within a minute
        served.provider.add(ALICE if i % 2 else BOB, f"answer {i}")
    await harness.cycle()
    notice = served.slack.channels[OPS].messages[0]["text"]
    assert notice == ":hourglass_flowing_sand: 25 SMS arrived at once; posting them in order"


async def test_posts_are_paced_per_channel_so_a_backlog_draws_no_429s(
    served: Served, make_harness: MakeHarness
) -> None:

    served.slack.post_interval = 0.2  # the stand-in's limit: 5 a second, 4 at once
    served.slack.post_burst = 4
    settings_slack = SlackSettings(
        bot_token=SecretStr(served.slack.token),
        signing_secret=SecretStr("s"),
        api_url=f"{served.slack_url}/api/",
        post_interval=0.25,  # the bridge's own pace, a little slower than the limit
        post_burst=4,
    )
    harness = await make_harness(slack=settings_slack)
    for i in range(6):
        served.provider.add(ALICE, f"paced {i}", recipient=OPS_LINE if i % 2 else OTHER_LINE)
    await harness.cycle()
    posts = [
        (t, ch, status)
        for t, method, ch, status in served.slack.calls
        if method == "chat.postMessage"
    ]
    assert [status for _, _, status in posts if status != 200] == [], "a paced backlog drew 429s"
    assert len(served.slack.document_ids()) == 6


async def test_a_burst_goes_at_once_up_to_the_bucket_then_at_the_pace_and_obeys_retry_after(
    served: Served, make_harness: MakeHarness
) -> None:
    # Slack: about one post a second per channel, short bursts; the bridge keeps a little
    # below, as clocks and request times differ by milliseconds.
    served.slack.post_interval = 0.9
    served.slack.post_burst = 4
    slack = SlackSettings(
        bot_token=SecretStr(served.slack.token),
        signing_secret=SecretStr("s"),
        api_url=f"{served.slack_url}/api/",
        post_interval=1.0,
        post_burst=4,
    )
    harness = await make_harness(slack=slack)
    for i in range(6):
        served.provider.add(ALICE, f"burst {i}")
    await harness.cycle()
    posts = [
        t
        for t, method, _, status in served.slack.calls
        if method == "chat.postMessage" and status == 200
    ]
    assert len(served.slack.document_ids()) == 6
    assert served.slack.answered(429) == 0, "the bucket let a post go early"
    posts = posts[-6:]  # the first may have been answered not_in_channel
    start = posts[0]
    assert posts[3] - start < 0.5  # four at once
    assert 0.9 < posts[4] - start < 1.5  # then one a second
    assert 1.9 < posts[5] - start < 2.5

    # Slack's 429 is the hard rule: a Retry-After longer than the bucket's pace holds the
    # channel until it has passed.
    served.slack.force("chat.postMessage", status=429, retry_after=2)
    served.provider.add(BOB, "after a 429")
    await harness.cycle()
    assert served.slack.early_posts == 0
    limited, retried = [
        t for t, method, _, _ in served.slack.calls[-2:] if method == "chat.postMessage"
    ]
    assert retried - limited >= 2.0
    assert len(served.slack.document_ids()) == 7


async def test_a_catch_up_draws_a_progress_bar_on_a_terminal(
    served: Served, make_harness: MakeHarness
) -> None:
    import io

    from rich.console import Console

    from smsbridge.terminal import TerminalProgress

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100, color_system=None)
    harness = await make_harness(progress=TerminalProgress(terminal))
    for i in range(22):
        served.provider.add(ALICE, f"while we were away {i}")
    await harness.cycle()
    drawn = screen.getvalue()
    assert "catching up C0OPS" in drawn
    assert "22/22" in drawn
    assert len(served.slack.document_ids()) == 22


@pytest.mark.postgres
async def test_a_retry_after_a_5xx_checks_slack_at_once_not_after_the_replica_grace(
    served: Served,
    make_harness: MakeHarness,
    postgres_database: str,
) -> None:
    # On PostgreSQL another replica's claim gets a grace (the Slack timeout + 5 s, here 65 s)
    # before it counts as in doubt.
    slack = SlackSettings(
        bot_token=SecretStr(served.slack.token),
        signing_secret=SecretStr("s"),
        api_url=f"{served.slack_url}/api/",
        post_interval=0,
        timeout=60,
    )
    harness = await make_harness(database_url=postgres_database, slack=slack)
    served.slack.force("chat.postMessage", status=500, after_effect=True)
    served.provider.add(ALICE, "answer lost once")
    # Our own claim is not another replica's: the retry must not wait out the grace.
    await asyncio.wait_for(harness.cycle(), 30)
    assert posted_texts(served, OPS) == ["answer lost once"]
