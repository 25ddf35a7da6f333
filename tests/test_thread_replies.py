"""Answering an SMS from its Slack thread, as Slack sends it: a signed `message` event over HTTP
to a running service. Sent once however often Slack delivers the event; notes, bots, opted-out
numbers and overlong texts are not sent, and the person is told why."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    INBOX,
    OPS,
    OPS_LINE,
    USERNAME,
    MakeHarness,
    MakeSettings,
    Served,
    running_service,
)
from processes import free_port
from smsbridge.privacy import account_label
from smsbridge.service import Service

SECRET = "test-signing-secret"
CUSTOMER = "61409560857"


class Side:
    def __init__(self, served: Served, service: Service, http: httpx.AsyncClient) -> None:
        self.served, self.service, self.http = served, service, http
        self.events = 0

    async def customer_texts(self, text: str) -> str:
        """An SMS arrives and is bridged; returns its Slack thread."""
        before = len(self.served.slack.document_ids())
        self.served.provider.add(CUSTOMER, text, recipient=OPS_LINE)
        await asyncio.wait_for(self.served.slack.wait_for_sms(before + 1), 30)
        assert self.service.bridge is not None
        for lane in self.service.bridge.lanes:
            await lane.delivery.idle()  # the post is confirmed in the ledger, thread and all
        return str(self.served.slack.top_level(OPS)[-1]["ts"])

    async def event(self, message: dict[str, Any], retry: int = 0) -> int:
        """Slack delivers a message event in OPS (unless the message names its channel)."""
        self.events += 1
        return await self.served.slack.deliver(
            str(self.http.base_url).rstrip("/"), SECRET, {"channel": OPS, **message}, retry=retry
        )

    async def reply(self, thread: str, text: str, **extra: Any) -> str:
        ts = self.served.slack.say(OPS, "U0JANE", text, thread_ts=thread)
        answer = await self.event(
            {"user": "U0JANE", "text": text, "ts": ts, "thread_ts": thread, **extra}
        )
        assert answer == 200
        return ts

    async def settle(self) -> None:
        """Until the sender has nothing left to do."""
        assert self.service.bridge is not None
        for lane in self.service.bridge.lanes:
            await lane.sender.idle()


@pytest.fixture
async def side(
    served: Served, make_settings: MakeSettings, request: pytest.FixtureRequest
) -> AsyncIterator[Side]:
    port = free_port()
    routes = {OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX}
    overrides = getattr(request, "param", {})  # settings a test asks for (indirect)
    settings = make_settings(port=port, routes=routes, **overrides)
    async with running_service(settings) as (service, http):
        yield Side(served, service, http)


async def test_a_thread_reply_goes_out_once_however_often_slack_delivers_it(
    served: Served, side: Side
) -> None:
    thread = await side.customer_texts("Can you come at 10?")
    ts = await side.reply(thread, "Yes &amp; see <https://x.example/map|the map>")
    for retry in (1, 2):  # Slack was unsure we got it
        again = await side.event(
            {"user": "U0JANE", "text": "Yes", "ts": ts, "thread_ts": thread}, retry=retry
        )
        assert again == 200
    await side.settle()
    [sent] = served.provider.sent
    assert (sent.recipient, sent.sender) == (CUSTOMER, OPS_LINE)
    assert sent.text == "Yes & see the map (https://x.example/map)"
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == ts)
    assert message["reactions"] == ["white_check_mark"]  # ⏳ while queued, then ✅ for sent
    reacted = [method for _, method, _, status in served.slack.calls if status == 200]
    assert reacted.count("reactions.add") == 2
    assert reacted.count("reactions.remove") == 1
    assert side.service.bridge is not None
    metrics = side.service.bridge.metrics.exposition().decode()
    label = account_label(USERNAME, None)
    assert f'smsbridge_outbound_sms_total{{account="{label}",outcome="sent"}} 1.0' in metrics
    [status] = await side.service.bridge.status()
    assert status.outbound["sent"] == 1


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({}, "// internal: check the roster first"),
        ({"bot_id": "B0OTHER"}, "an app's message"),
        ({"subtype": "channel_join"}, "joined"),
        ({"subtype": "message_changed"}, "edited"),
    ],
    ids=["note", "bot", "join", "edit"],
)
async def test_what_is_not_a_persons_reply_is_never_sent(
    served: Served, side: Side, extra: dict[str, Any], text: str
) -> None:
    thread = await side.customer_texts("hello?")
    await side.reply(thread, text, **extra)
    await side.settle()
    assert served.provider.sent == []


async def test_a_reply_in_a_route_without_replies_is_the_teams_own(
    served: Served, side: Side
) -> None:
    served.provider.add(CUSTOMER, "to the inbox line", recipient="61400000002")
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    thread = str(served.slack.top_level(INBOX)[-1]["ts"])
    ts = served.slack.say(INBOX, "U0JANE", "shall we answer?", thread_ts=thread)
    body = {"user": "U0JANE", "text": "shall we answer?", "ts": ts, "thread_ts": thread}
    answer = await side.event({**body, "channel": INBOX})
    assert answer == 200
    await side.settle()
    assert served.provider.sent == []


async def test_stop_opts_the_number_out_until_start_and_the_thread_says_so(
    served: Served, side: Side
) -> None:
    thread = await side.customer_texts("STOP")
    parent = next(m for m in served.slack.channels[OPS].messages if m["ts"] == thread)
    assert "opted out" in parent["blocks"][-1]["elements"][0]["text"]
    ts = await side.reply(thread, "sorry to see you go")
    await side.settle()
    assert served.provider.sent == []
    explained = [m["text"] for m in served.slack.replies(OPS, thread) if "not sent" in m["text"]]
    assert any("opted out" in text for text in explained)
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == ts)
    assert "x" in message["reactions"]
    # The customer opts back in (in the same thread: the same sender, no origin).
    await side.customer_texts("start")
    await side.reply(thread, "welcome back")
    await side.settle()
    assert [sent.text for sent in served.provider.sent] == ["welcome back"]


async def test_a_reply_longer_than_three_parts_is_refused_with_its_length(
    served: Served, side: Side
) -> None:
    thread = await side.customer_texts("tell me everything")
    await side.reply(thread, "a" * 500)
    await side.settle()
    assert served.provider.sent == []
    explained = [m["text"] for m in served.slack.replies(OPS, thread) if "not sent" in m["text"]]
    assert any("4 SMS parts (500 GSM-7 characters)" in text for text in explained)


async def test_editing_or_deleting_a_sent_reply_is_explained_not_sent_again(
    served: Served, side: Side
) -> None:
    thread = await side.customer_texts("what time?")
    ts = await side.reply(thread, "10am")
    await side.settle()
    edited = {"user": "U0JANE", "text": "11am", "ts": ts, "thread_ts": thread}
    answer = await side.event(
        {
            "subtype": "message_changed",
            "ts": f"{ts}1",
            "message": edited,
            "previous_message": {**edited, "text": "10am"},
        }
    )
    assert answer == 200
    deleted = await side.event(
        {"subtype": "message_deleted", "ts": f"{ts}2", "deleted_ts": ts, "previous_message": edited}
    )
    assert deleted == 200
    await side.settle()
    assert [sent.text for sent in served.provider.sent] == ["10am"]  # the edit was not sent
    notes = [
        m["text"] for m in served.slack.replies(OPS, thread) if "cannot be changed" in m["text"]
    ]
    assert len(notes) == 2
    assert "edit is not sent" in notes[0]
    assert "does not unsend" in notes[1]


@pytest.mark.parametrize("side", [{"send_limit_per_person": 2}], indirect=True)
async def test_a_person_over_the_send_limit_is_told_to_wait(served: Served, side: Side) -> None:
    thread = await side.customer_texts("hello")
    for text in ("one", "two", "three"):
        await side.reply(thread, text)
    await side.settle()
    assert [sent.text for sent in served.provider.sent] == ["one", "two"]
    thread_texts = [m["text"] for m in served.slack.replies(OPS, thread)]
    assert any("most SMS allowed in a minute" in text for text in thread_texts)


@pytest.mark.parametrize("side", [{"send_allowed": "U0BOSS,S0DISPATCH"}], indirect=True)
async def test_only_the_allowed_people_and_groups_may_send(served: Served, side: Side) -> None:
    served.slack.usergroups["S0DISPATCH"] = ["U0JANE"]
    thread = await side.customer_texts("anyone there?")
    await side.reply(thread, "Jane here, in the dispatch group")
    outsider = served.slack.say(OPS, "U0TEMP", "a temp trying", thread_ts=thread)
    message = {"user": "U0TEMP", "text": "a temp trying", "ts": outsider, "thread_ts": thread}
    assert await side.event(message) == 200
    await side.settle()
    assert [sent.text for sent in served.provider.sent] == ["Jane here, in the dispatch group"]
    thread_texts = [m["text"] for m in served.slack.replies(OPS, thread)]
    assert any("only the people the bridge's admin listed" in text for text in thread_texts)


async def test_a_reply_the_database_cannot_take_is_not_acknowledged_so_slack_retries(
    served: Served, side: Side, tmp_path: Path
) -> None:
    thread = await side.customer_texts("are you open today?")
    ts = served.slack.say(OPS, "U0JANE", "Yes, until 5", thread_ts=thread)
    message = {"user": "U0JANE", "text": "Yes, until 5", "ts": ts, "thread_ts": thread}
    blocker = sqlite3.connect(tmp_path / "bridge.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # the database is busy past the bridge's patience
    try:
        refused = await side.event(message)
    finally:
        blocker.rollback()
        blocker.close()
    assert refused == 500  # not acknowledged: Slack will deliver it again
    retried = await side.event(message, retry=1)
    assert retried == 200
    await side.settle()
    assert [sent.text for sent in served.provider.sent] == ["Yes, until 5"]


async def test_the_answer_to_a_reply_threads_back_after_a_restart(
    served: Served, make_harness: MakeHarness
) -> None:
    routes = {OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX}
    first = await make_harness(routes=routes)
    served.provider.add(CUSTOMER, "Is 10 ok?", recipient=OPS_LINE)
    await first.cycle()
    thread = str(served.slack.top_level(OPS)[0]["ts"])
    reply = served.slack.say(OPS, "U0JANE", "Yes", thread_ts=thread)
    await first.bridge.store.outbox.record(
        first.account, OPS, reply, thread, "U0JANE", CUSTOMER, OPS_LINE, "Yes"
    )
    await first.lane.sender.kick()
    await first.lane.sender.idle()
    await first.close()  # the process stops ...
    second = await make_harness(routes=routes)  # ... and a new one starts on the same database
    served.provider.reply_to(served.provider.sent[0], "Great")
    await second.cycle()
    bridged = [m for m in served.slack.replies(OPS, thread) if m.get("blocks")]
    assert [m["blocks"][-1]["text"]["text"] for m in bridged] == ["Great"]


TOKEN = "t" * 40


@pytest.mark.parametrize("side", [{"push": {"token": TOKEN}}], indirect=True)
async def test_a_pushed_final_status_shows_on_the_reply(served: Served, side: Side) -> None:
    thread = await side.customer_texts("ok?")
    ts = await side.reply(thread, "yes")
    await side.settle()
    [sent] = served.provider.sent
    wrong = await side.http.get(f"/provider/status/{'x' * 40}?id={sent.document_id}&status=2")
    assert wrong.status_code == 404  # the secret is part of the URL
    unreadable = await side.http.get(f"/provider/status/{TOKEN}?id={sent.document_id}&status=x")
    assert unreadable.status_code == 400
    pushed = await side.http.post(
        f"/provider/status/{TOKEN}", data={"id": sent.document_id, "status": "2"}
    )
    assert pushed.status_code == 200
    again = await side.http.get(f"/provider/status/{TOKEN}?id={sent.document_id}&status=2")
    assert again.status_code == 200
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == ts)
    assert message["reactions"] == ["white_check_mark", "mailbox_with_mail"]  # once


async def test_without_a_push_token_there_is_no_push_url(side: Side) -> None:
    answer = await side.http.get(f"/provider/status/{TOKEN}?id=abc&status=2")
    assert answer.status_code == 404


def test_a_push_token_must_be_long() -> None:
    from smsbridge.config import PushSettings

    with pytest.raises(ValueError, match="at least 32 characters"):
        PushSettings(token="short")
