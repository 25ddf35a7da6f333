"""`/sms` as Slack sends it: signed form posts over HTTP to a running service; the answer is
caught where Slack would receive it, at the command's `response_url`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conftest import (
    INBOX,
    OPS,
    OPS_LINE,
    OTHER_LINE,
    USERNAME,
    MakeSettings,
    Served,
    running_service,
)
from processes import free_port
from smsbridge.config import SlackSettings
from smsbridge.service import Service
from smsbridge.sim.provider import Account, Fault
from smsbridge.sim.serve import serve

SECRET = "test-signing-secret"
ALICE, BOB = "61409560857", "61412345678"
ZONE = "Australia/Sydney"


class Catcher:
    """Stands where Slack receives `response_url` posts."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def endpoint(self, request: Request) -> Response:
        await self.answers.put(await request.json())
        return Response("ok")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/respond", self.endpoint, methods=["POST"])])


@dataclass
class SlackClientSide:
    http: httpx.AsyncClient
    catcher: Catcher
    catcher_url: str
    served: Served
    service: Service

    async def post(
        self,
        text: str,
        *,
        user: str = "U0ALICE",
        channel: str = OPS,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "unused",
                "team_id": "T0SIM",
                "channel_id": channel,
                "user_id": user,
                "command": "/sms",
                "text": text,
                "response_url": f"{self.catcher_url}/respond",
                "trigger_id": "1.2.3",
            }
        )
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = str(SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body))
        return await self.http.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )

    async def ask(self, text: str, **kwargs: Any) -> str:
        """Send the command; return the answer's text (fallback and blocks together)."""
        response = await self.post(text, **kwargs)
        assert response.status_code == 200, response.text
        answer = await asyncio.wait_for(self.catcher.answers.get(), 15)
        assert answer["response_type"] == "ephemeral"
        parts = [answer["text"]]
        for block in answer.get("blocks", []):
            if block["type"] == "section":
                parts.append(block["text"]["text"])
            elif block["type"] == "context":
                parts.extend(element["text"] for element in block["elements"])
        return "\n".join(parts)


@pytest.fixture
async def slack_side(served: Served, make_settings: MakeSettings) -> AsyncIterator[Any]:
    catcher = Catcher()
    served.slack.users.update({"U0ALICE": ZONE, "U0BOSS": ZONE, "U0OUTSIDER": ZONE})

    async def start(**overrides: Any) -> SlackClientSide:
        settings = make_settings(port=free_port(), **overrides)
        service, http = await stack.enter_async_context(running_service(settings))
        return SlackClientSide(http, catcher, catcher_url, served, service)

    async with serve(catcher.app()) as catcher_url, contextlib.AsyncExitStack() as stack:
        yield start


def at(seconds_ago: float) -> int:
    return int(time.time() - seconds_ago)


def midnight(days_back: int) -> int:
    local = datetime.now(ZoneInfo(ZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((local - timedelta(days=days_back)).timestamp())


def iso_local(moment: int) -> str:
    return datetime.fromtimestamp(moment, ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize(
    ("form", "start"),
    [
        ("2h", lambda: at(7200)),
        ("30m", lambda: at(1800)),
        ("3d", lambda: at(3 * 86400)),
        ("1w", lambda: at(7 * 86400)),
        ("today", lambda: midnight(0)),
        ("yesterday", lambda: midnight(1)),
        ("EPOCH", lambda: at(5000)),
        ("ISO_DATE", lambda: midnight(2)),
        ("ISO_LOCAL", lambda: at(4 * 3600) // 60 * 60),
        ("ISO_OFFSET", lambda: at(4 * 3600) // 60 * 60),
        ("since:90m", lambda: at(5400)),
    ],
)
async def test_history_since_each_form_includes_exactly_what_came_after(
    served: Served,
    slack_side: Any,
    form: str,
    start: Any,
) -> None:
    side = await slack_side()
    begin = start()
    served.provider.add(ALICE, "just before", timestamp=begin - 90)
    served.provider.add(ALICE, "just after", timestamp=begin + 30)
    typed = {
        "EPOCH": str(begin),
        "ISO_DATE": datetime.fromtimestamp(begin, ZoneInfo(ZONE)).date().isoformat(),
        "ISO_LOCAL": iso_local(begin),  # read in the user's Slack time zone
        "ISO_OFFSET": datetime.fromtimestamp(begin, ZoneInfo("UTC")).strftime(
            "%Y-%m-%dT%H:%M+00:00"
        ),
    }.get(form, form)
    answer = await side.ask(f"history {typed}")
    assert "just after" in answer
    assert "just before" not in answer


async def test_history_groups_by_sender_newest_first_escaped_and_linked(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    served.provider.add(ALICE, "first from alice", timestamp=at(600))
    served.provider.add(BOB, "<!channel> from bob", timestamp=at(500))
    served.provider.add(ALICE, "second from alice", timestamp=at(400))
    await asyncio.wait_for(served.slack.wait_for_sms(3), 15)  # bridged by the running service
    assert side.service.bridge is not None
    for lane in side.service.bridge.lanes:
        await lane.delivery.idle()  # and confirmed in its ledger
    answer = await side.ask("history 1h")
    assert (
        answer.index("second from alice")
        < answer.index("first from alice")
        < answer.index("from bob")
    )
    assert "*+61 409 560 857*" in answer
    assert "&lt;!channel&gt; from bob" in answer
    assert "<!channel>" not in answer
    assert answer.count("|thread>") == 3
    assert "https://sim.slack.invalid/archives/C0OPS/p" in answer


@pytest.mark.parametrize(
    "typed", ["0409 560 857", "+61409560857", "61409560857", "from:0409560857"]
)
async def test_history_from_accepts_the_forms_people_type(
    served: Served, slack_side: Any, typed: str
) -> None:
    side = await slack_side()
    served.provider.add(ALICE, "alice", timestamp=at(60))
    served.provider.add(BOB, "bob", timestamp=at(60))
    text = f"history 1h {typed}" if typed.startswith("from:") else f"history 1h from {typed}"
    answer = await side.ask(text)
    assert "alice" in answer
    assert "bob" not in answer


async def test_history_to_filters_by_line(served: Served, slack_side: Any) -> None:
    side = await slack_side(history_allowed_users=["U0BOSS"])
    served.provider.add(ALICE, "ops line", recipient=OPS_LINE, timestamp=at(60))
    served.provider.add(ALICE, "other line", recipient=OTHER_LINE, timestamp=at(60))
    answer = await side.ask(f"history 1h to {OTHER_LINE}", user="U0BOSS")
    assert "other line" in answer
    assert "ops line" not in answer


async def test_history_limit_says_how_many_more_and_how_to_narrow(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    for i in range(12):
        served.provider.add(ALICE, f"sms number {i:02d}", timestamp=at(600 - i))
    answer = await side.ask("history 1h limit 5")
    assert "Showing 5 of 12" in answer
    assert "from <number>" in answer
    assert [f"sms number {i:02d}" in answer for i in range(12)] == [False] * 7 + [True] * 5


async def test_default_limit_is_20(served: Served, slack_side: Any) -> None:
    side = await slack_side()
    for i in range(25):
        served.provider.add(ALICE, f"n{i}", timestamp=at(600 - i))
    assert "Showing 20 of 25" in await side.ask("history 1h")


async def test_history_with_nothing_found_says_so(slack_side: Any) -> None:
    side = await slack_side()
    assert "No SMS" in await side.ask("history 10m from 0409 560 857")


async def test_history_explains_a_provider_rejection(served: Served, slack_side: Any) -> None:
    side = await slack_side()
    served.provider.accounts[USERNAME] = Account("changed by someone")
    answer = await side.ask("history 1h")
    assert "the SMS provider rejected our credentials" in answer.replace("The SMS", "the SMS")
    assert "SMSBRIDGE_PROVIDER__PASSWORD" in answer


async def test_history_explains_a_provider_outage(served: Served, slack_side: Any) -> None:
    side = await slack_side()
    served.provider.inject(Fault.HTTP_503, times=100)
    assert "not answering properly right now" in await side.ask("history 1h")


async def test_the_command_is_acknowledged_before_a_slow_answer(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    served.provider.slow_seconds = 1.5
    served.provider.inject(Fault.SLOW)
    served.provider.inject(Fault.SLOW)
    response = await side.post("history 1h")
    assert response.status_code == 200
    assert side.catcher.answers.empty()  # acknowledged; the answer is still being worked out
    await asyncio.wait_for(side.catcher.answers.get(), 15)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("frobnicate", "I don't know `frobnicate`"),
        ("history yesterdayish", "I can't read `yesterdayish` as a time"),
        ("history 2h limit lots", "`limit` must be a whole number"),
        ("history 2h from not-a-number", "is not a phone number"),
        ("history tomorrow", "I can't read `tomorrow`"),
        ("history", "needs a time"),
        ("", "*/sms history*"),
        ("help", "*/sms history*"),
    ],
)
async def test_bad_input_gets_usage_and_the_reason(slack_side: Any, text: str, words: str) -> None:
    side = await slack_side()
    answer = await side.ask(text)
    assert words in answer
    assert "/sms history 2h" in answer  # an example to copy


async def test_a_forged_signature_is_refused(slack_side: Any) -> None:
    side = await slack_side()
    response = await side.post("history 1h", secret="not-the-secret")
    assert response.status_code == 401
    assert side.catcher.answers.empty()


async def test_a_stale_request_is_refused(slack_side: Any) -> None:
    side = await slack_side()
    response = await side.post("history 1h", timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401


async def test_history_outside_routed_channels_is_refused_with_the_reason(slack_side: Any) -> None:
    side = await slack_side()
    answer = await side.ask("history 1h", user="U0OUTSIDER", channel="C0RANDOM")
    assert "answers only in channels that receive SMS" in answer
    assert f"<#{OPS}>" in answer


async def test_in_a_routed_channel_history_shows_that_channels_sms(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    served.provider.add(ALICE, "for ops", recipient=OPS_LINE, timestamp=at(60))
    served.provider.add(ALICE, "for the inbox", recipient=OTHER_LINE, timestamp=at(60))
    answer = await side.ask("history 1h", channel=INBOX)
    assert "for the inbox" in answer
    assert "for ops" not in answer


async def test_allowed_users_may_ask_anywhere(served: Served, slack_side: Any) -> None:
    side = await slack_side(history_allowed_users=["U0BOSS"])
    served.provider.add(ALICE, "visible to the boss", timestamp=at(60))
    assert "visible to the boss" in await side.ask("history 1h", user="U0BOSS", channel="D0DIRECT")


async def test_a_user_over_the_rate_limit_is_asked_to_wait(slack_side: Any) -> None:
    side = await slack_side(history_rate_limit=3)
    for _ in range(3):
        assert "used `/sms` 3 times" not in await side.ask("history 5m")
    assert "used `/sms` 3 times in the last minute" in await side.ask("history 5m")
    assert "No SMS" in await side.ask("history 5m", user="U0BOSS")  # others are unaffected


async def test_status_reports_poll_cursor_counts_and_health(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side(routes={OPS_LINE: OPS})
    served.provider.add(ALICE, "bridged", recipient=OPS_LINE)
    served.provider.add(ALICE, "nowhere to go", recipient=OTHER_LINE)
    await asyncio.wait_for(served.slack.wait_for_sms(1), 15)
    answer = await side.ask("status")
    assert "Last successful poll: <!date^" in answer
    assert f"by `{side.service.bridge.lanes[0].keeper.holder}`" in answer  # which replica polls
    assert "Cursor: <!date^" in answer
    assert "Unrouted: 1" in answer
    assert "SMS provider: :white_check_mark: ok" in answer
    assert "Slack: :white_check_mark: ok" in answer


async def test_socket_mode_serves_sms_without_a_public_url(served: Served, slack_side: Any) -> None:
    settings_slack = SlackSettings(
        bot_token=SecretStr(served.slack.token),
        signing_secret=SecretStr(SECRET),
        api_url=f"{served.slack_url}/api/",
        app_token=SecretStr(served.slack.app_token),
    )
    side = await slack_side(slack=settings_slack)
    await asyncio.wait_for(served.slack.wait_for_socket(), 15)
    served.provider.add(ALICE, "over the socket", timestamp=at(60))
    envelope = await served.slack.send_envelope(
        "slash_commands",
        {
            "command": "/sms",
            "text": "history 1h",
            "user_id": "U0ALICE",
            "channel_id": OPS,
            "team_id": "T0SIM",
            "response_url": f"{side.catcher_url}/respond",
        },
    )
    ack = await asyncio.wait_for(served.slack.socket_acks.get(), 15)
    assert ack["envelope_id"] == envelope
    answer = await asyncio.wait_for(side.catcher.answers.get(), 15)
    assert "over the socket" in answer["text"] + str(answer["blocks"])


async def test_a_wrong_app_token_stops_run_with_a_clear_error(
    served: Served, make_settings: MakeSettings
) -> None:
    settings = make_settings(
        port=free_port(),
        slack=SlackSettings(
            bot_token=SecretStr(served.slack.token),
            signing_secret=SecretStr(SECRET),
            api_url=f"{served.slack_url}/api/",
            app_token=SecretStr("xapp-wrong"),
        ),
    )
    service = Service(settings, host="127.0.0.1", handle_signals=False)
    assert await asyncio.wait_for(service.run(), 30) == 2
    assert "SMSBRIDGE_SLACK__APP_TOKEN" in str(service.fatal)


async def test_with_several_accounts_history_and_status_cover_the_right_ones(
    served: Served, slack_side: Any
) -> None:
    served.provider.accounts["agency@reseller"] = Account("agency pass")
    first = {"username": USERNAME, "password": "demo password & more", "routes": {"*": OPS}}
    agency = {"username": "agency@reseller", "password": "agency pass", "routes": {"*": INBOX}}
    accounts = [{**first, "url": served.provider_url}, {**agency, "url": served.provider_url}]
    side = await slack_side(
        accounts=accounts, provider=None, routes={}, history_allowed_users=["U0ADMIN"]
    )
    served.provider.add(ALICE, "first account's sms", timestamp=at(60))
    served.provider.add(BOB, "agency's sms", timestamp=at(60), account="agency@reseller")
    in_inbox = await side.ask("history 1h", channel=INBOX)
    assert "agency's sms" in in_inbox
    assert "first account's sms" not in in_inbox
    everything = await side.ask("history 1h", user="U0BOSS", channel="D0DM")
    assert "first account's sms" not in everything  # U0BOSS is not on the allow-list here
    # status follows history's access rule: a channel sees the accounts routed to it ...
    in_channel = await side.ask("status", channel=INBOX)
    assert "*smsbridge status*" in in_channel  # one account: untitled
    assert "smsbridge status: " not in in_channel
    # ... and an allowed user sees every account, each titled
    everyone = await side.ask("status", user="U0ADMIN", channel="D0DM")
    assert f"smsbridge status: {USERNAME}" in everyone
    assert "smsbridge status: agency@reseller" in everyone


async def test_status_outside_routed_channels_is_refused_like_history(slack_side: Any) -> None:
    side = await slack_side()
    answer = await side.ask("status", user="U0OUTSIDER", channel="C0RANDOM")
    assert "answers only in channels that receive SMS" in answer
    assert "Last successful poll" not in answer


async def test_a_users_info_answer_without_a_user_falls_back_to_utc(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    served.slack.force("users.info", body='{"ok": true}')
    served.provider.add(ALICE, "still found", timestamp=at(60))
    answer = await side.ask("history 1h", user="U0NEWCOMER")
    assert "still found" in answer
    assert "read as UTC" in answer


@pytest.mark.parametrize("verb", ["history ", "", "status "], ids=["since", "verb", "status"])
async def test_an_answer_to_a_huge_argument_fits_slacks_limits(slack_side: Any, verb: str) -> None:
    side = await slack_side()
    await side.post(verb + "<!channel>" + "x" * 10_000)
    answer = await asyncio.wait_for(side.catcher.answers.get(), 15)
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert sections
    assert all(len(text) <= 3000 for text in sections)
    assert "x" * 41 not in answer["text"]  # only a short excerpt is quoted back
    assert "<!channel>" not in answer["text"]  # and it is escaped


async def test_help_explains_answering_by_sms_and_the_note_prefix(slack_side: Any) -> None:
    side = await slack_side(note_prefix="#note")
    answer = await side.ask("help")
    assert "goes out by SMS" in answer
    assert "`#note`" in answer


async def test_sms_send_opens_a_thread_and_the_answer_arrives_in_it(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side(routes={OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX})
    answer = await side.ask("send 0409560857 Your parcel is at the front desk", channel=OPS)
    assert "Queued" in answer
    await asyncio.wait_for(served.provider.wait_for_sent(1), 15)
    [sent] = served.provider.sent
    assert (sent.recipient, sent.sender, sent.text) == (
        ALICE,
        OPS_LINE,
        "Your parcel is at the front desk",
    )
    [parent] = served.slack.top_level(OPS)
    assert "Your parcel is at the front desk" in parent["text"]
    served.provider.reply_to(sent, "Thanks, on my way")
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    [answered] = served.slack.replies(OPS, parent["ts"])
    assert answered["blocks"][-1]["text"]["text"] == "Thanks, on my way"


async def test_sms_send_where_sending_is_off_says_so(served: Served, slack_side: Any) -> None:
    side = await slack_side()  # plain routes: replies off
    answer = await side.ask("send 0409560857 hello", channel=OPS)
    assert "not turned on" in answer
    assert served.provider.sent == []


async def test_socket_mode_takes_a_thread_reply_and_acknowledges_it_once_recorded(
    served: Served, slack_side: Any
) -> None:
    settings_slack = SlackSettings(
        bot_token=SecretStr(served.slack.token),
        signing_secret=SecretStr(SECRET),
        api_url=f"{served.slack_url}/api/",
        app_token=SecretStr(served.slack.app_token),
        post_interval=0,
    )
    routes = {OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX}
    side = await slack_side(slack=settings_slack, routes=routes)
    await asyncio.wait_for(served.slack.wait_for_socket(), 15)
    served.provider.add(ALICE, "over the socket, please answer")
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    assert side.service.bridge is not None
    await side.service.bridge.lanes[0].delivery.idle()  # the post and its thread are recorded
    parent = served.slack.top_level(OPS)[0]["ts"]
    ts = served.slack.say(OPS, "U0ALICE", "On our way", thread_ts=parent)
    event = {
        "type": "event_callback",
        "team_id": "T0SIM",
        "event_id": "Ev1",
        "event": {
            "type": "message",
            "channel": OPS,
            "user": "U0ALICE",
            "text": "On our way",
            "ts": ts,
            "thread_ts": parent,
        },
    }
    for _ in range(2):  # Socket Mode redelivers too: sent once
        envelope = await served.slack.send_envelope("events_api", event)
        ack = await asyncio.wait_for(served.slack.socket_acks.get(), 15)
        assert ack["envelope_id"] == envelope  # acknowledged after it was recorded
    await asyncio.wait_for(served.provider.wait_for_sent(1), 15)
    await side.service.bridge.lanes[0].sender.idle()
    assert [sent.text for sent in served.provider.sent] == ["On our way"]


async def test_a_reply_in_a_thread_started_with_sms_send_goes_to_the_same_number(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side(routes={OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX})
    await side.ask("send 0409560857 Your parcel is at the front desk", channel=OPS)
    await asyncio.wait_for(served.provider.wait_for_sent(1), 15)
    [parent] = served.slack.top_level(OPS)
    ts = served.slack.say(OPS, "U0ALICE", "It closes at 5", thread_ts=parent["ts"])
    message = {"channel": OPS, "user": "U0ALICE", "text": "It closes at 5", "ts": ts}
    delivered = await served.slack.deliver(
        str(side.http.base_url).rstrip("/"), SECRET, {**message, "thread_ts": parent["ts"]}
    )
    assert delivered == 200
    await asyncio.wait_for(served.provider.wait_for_sent(2), 15)
    assert [(sent.recipient, sent.text) for sent in served.provider.sent][-1] == (
        ALICE,
        "It closes at 5",
    )


async def test_contacts_added_listed_shown_by_name_and_removed_from_slack(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side()
    assert "Added" in await side.ask("contact add 0409560857 Jane Doe")
    assert "Updated" in await side.ask("contact add +61409560857 Jane  Doe")
    assert "Added" in await side.ask("contact add 0412345678 <!channel> Bob")
    listed = await side.ask("contact list")
    assert "Jane Doe (+61 409 560 857)" in listed
    assert "&lt;!channel&gt; Bob (+61 412 345 678)" in listed  # a name pings nobody
    assert "<!channel>" not in listed
    served.provider.add(ALICE, "hello from jane", timestamp=at(60))
    await asyncio.wait_for(served.slack.wait_for_sms(1), 15)
    [post] = served.slack.top_level(OPS)
    assert "*Jane Doe (+61 409 560 857)*" in post["blocks"][0]["elements"][0]["text"]
    assert "Jane Doe (+61 409 560 857)" in await side.ask("history 1h")
    assert "Removed Jane Doe (+61 409 560 857)" in await side.ask("contact remove 0409560857")
    assert "No contact has the number" in await side.ask("contact remove 0409560857")
    assert "Jane" not in await side.ask("contact list")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("contact", "/sms contact add <number> <name>"),
        ("contact add 0409560857", "/sms contact add <number> <name>"),
        ("contact add nonsense Jane", "is not a phone number"),
        ("contact add 0409560857 " + "x" * 101, "longer than 100 characters"),
        ("contact remove", "/sms contact add <number> <name>"),
    ],
)
async def test_contact_commands_explain_bad_input(slack_side: Any, text: str, words: str) -> None:
    side = await slack_side()
    assert words in await side.ask(text)


async def test_contact_commands_follow_the_history_access_rule(slack_side: Any) -> None:
    side = await slack_side()
    answer = await side.ask("contact list", channel="C0ELSEWHERE", user="U0OUTSIDER")
    assert "answers only in channels that receive SMS" in answer


async def test_sms_send_to_a_contact_by_name_and_ambiguous_names_are_listed(
    served: Served, slack_side: Any
) -> None:
    side = await slack_side(routes={OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX})
    await side.ask("contact add 0409560857 Jane Doe", channel=OPS)
    await side.ask("contact add 0412345678 Jane Roe", channel=OPS)
    await side.ask("contact add 0412345679 Jane Roe", channel=OPS)
    answer = await side.ask("send jane doe Your parcel is at the front desk", channel=OPS)
    assert "Queued" in answer
    await asyncio.wait_for(served.provider.wait_for_sent(1), 15)
    [sent] = served.provider.sent
    assert (sent.recipient, sent.text) == (ALICE, "Your parcel is at the front desk")
    [parent] = served.slack.top_level(OPS)
    assert "SMS to Jane Doe (+61 409 560 857)" in parent["text"]
    ambiguous = await side.ask("send Jane Roe hello", channel=OPS)
    assert "2 contacts are named Jane Roe" in ambiguous
    assert "+61 412 345 678" in ambiguous
    assert "+61 412 345 679" in ambiguous
    unknown = await side.ask("send Jane hello", channel=OPS)
    assert "no contact has that name" in unknown
    assert "Jane Doe (+61 409 560 857)" in unknown
    assert len(served.provider.sent) == 1
