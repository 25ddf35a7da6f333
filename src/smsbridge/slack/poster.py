"""SlackPoster: post one rendered SMS, and find out whether an earlier attempt already did.

Rate limits are per channel: a 429 makes only that channel wait its `Retry-After` (clamped to a
sane range), because each channel is served by its own delivery worker. `not_in_channel` joins
and tries again. An answer that is not a JSON object, or a post answered `ok` without a `ts`,
is treated as transient: the post may or may not exist, so the caller checks Slack first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.errors import SlackRejectedError, SlackTransientError
from smsbridge.ratelimit import Pacer
from smsbridge.slack.errors import classify_answer
from smsbridge.slack.render import EVENT_TYPE, SlackMessage
from smsbridge.slack.webapi import Answer, WebApi

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0
MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1.0, 120.0  # a Retry-After outside this is clamped, and said
MAX_LOOKUP_PAGES = 10  # pages of 200 looked at to find an earlier post (2,000 messages)

Sleep = Callable[[float], Awaitable[None]]


MAX_CONNECTIONS = 64  # to Slack, shared by every channel's worker and the /sms answers


class SharedClient(AsyncWebClient):
    """The one Slack client of a process. Bolt deep-copies each request for a lazy listener
    (`/sms` answers), the client included; a copy of its pooled session cannot be made (it
    holds the loop's futures) and must not be: every copy shares this client."""

    def __deepcopy__(self, memo: dict[int, object]) -> SharedClient:
        return self


def make_client(token: str, api_url: str, timeout: int) -> AsyncWebClient:
    """The SDK client, over one pooled keep-alive HTTP session (made in the running loop;
    `close_client` closes it). Without a session the SDK opens a new one, so a new TCP
    connection and against slack.com a new TLS handshake, for every call. Its own retry
    handlers are off: we retry per channel, in one place."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=30),
    )
    return SharedClient(
        token=token, base_url=api_url, retry_handlers=[], timeout=timeout, session=session
    )


async def close_client(client: AsyncWebClient) -> None:
    if client.session is not None:
        await client.session.close()


class LookupIncomplete(SlackTransientError):
    """The search for an earlier post ended before it covered the time it had to cover."""


class SlackPoster:
    def __init__(
        self,
        client: AsyncWebClient,
        sleep: Sleep = asyncio.sleep,
        on_rate_limited: Callable[[str], None] = lambda channel: None,
        post_interval: float = 0.0,
        post_burst: int = 1,
    ) -> None:
        self._api = WebApi(client)
        # Slack allows about one message per second per channel, with short bursts: a token
        # bucket per channel lets a burst go at once and paces a backlog, which avoids a 429
        # (and a lost second) on every post. A 429's Retry-After still pauses the channel.
        self._post_interval = post_interval
        self._pacer = Pacer(post_interval, post_burst)
        self._sleep = sleep
        self._on_rate_limited = on_rate_limited
        self._not_before: dict[str, float] = {}  # channel -> monotonic end of a Retry-After

    async def post(
        self,
        channel: str,
        message: SlackMessage,
        thread_ts: str | None,
        *,
        reply_broadcast: bool = False,
    ) -> str:
        """Post and return the message's ts."""
        wait = self._pacer.reserve(channel)
        if wait > 0:
            await self._sleep(wait)
        try:
            response = await self._call(
                "chat.postMessage",
                channel,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                thread_ts=thread_ts,
                reply_broadcast=reply_broadcast or None,
                unfurl_links=False,
                unfurl_media=False,
            )
        finally:
            self._pacer.spent(channel)  # Slack counted it by the time we heard back
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            # Without a ts we cannot know the post exists: in doubt, so Slack is checked first.
            raise SlackTransientError("Slack answered ok to a post but gave no ts")
        return ts

    async def note(self, channel: str, message: SlackMessage, thread_ts: str) -> None:
        """Post a message of the bridge's own in a thread. Feedback, not delivery: a failure
        here is logged and dropped."""
        try:
            await self.post(channel, message, thread_ts)
        except (SlackTransientError, SlackRejectedError) as error:
            log.info("could not post a note in %s: %s", channel, error)

    async def react(self, channel: str, ts: str, name: str, *, add: bool = True) -> None:
        """Add (or take back) our reaction on a message: how a person sees their SMS's fate.

        Feedback, not delivery: a failure here is logged and dropped.
        """
        method = "reactions.add" if add else "reactions.remove"
        try:
            await self._call(method, channel, timestamp=ts, name=name)
        except (SlackTransientError, SlackRejectedError) as error:
            log.info("could not %s :%s: in %s: %s", method, name, channel, error)

    async def find_posted(
        self, channel: str, document_id: str, thread_ts: str | None, oldest: float
    ) -> str | None:
        """The ts of a message we posted for `document_id`, if an earlier attempt got through.

        Replies are looked up in their thread, top-level messages in the channel's history
        since `oldest`; both matched by the ids in our message metadata. At most
        MAX_LOOKUP_PAGES pages are read, paced like posts (history reads are rate-limited
        too); a search that ends before Slack said there is no more raises LookupIncomplete:
        "not found" would then be a guess.
        """
        cursor: str | None = None
        seen: set[str] = set()
        for page in range(MAX_LOOKUP_PAGES):
            if page and self._post_interval:
                await self._sleep(self._post_interval)
            if thread_ts:
                response = await self._call(
                    "conversations.replies",
                    channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            else:
                response = await self._call(
                    "conversations.history",
                    channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            found = _find_in(response.get("messages"), document_id)
            if found is not None:
                return found
            metadata = response.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not cursor or not isinstance(cursor, str):
                return None
            if cursor in seen:
                break  # Slack handed back a cursor we already followed
            seen.add(cursor)
        raise LookupIncomplete(
            f"could not finish checking Slack for SMS {document_id} in {channel} "
            f"(still more after {MAX_LOOKUP_PAGES} pages)"
        )

    async def _call(self, method: str, channel: str, **kwargs: Any) -> dict[str, Any]:
        """Slack's answer to `method`, once it is ok: a 429 waits its Retry-After and asks
        again, `not_in_channel` joins and asks again; anything else raises ours."""
        joined = False
        while True:
            # Asked again after each sleep: uvloop's timers count whole milliseconds and may
            # wake a fraction early, and a request before a Retry-After has passed is the one
            # thing Slack's limits forbid outright.
            while (wait := self._not_before.get(channel, 0.0) - time.monotonic()) > 0:
                await self._sleep(wait)
            answer = await self._ask(method, {"channel": channel, **kwargs})
            if answer.status == 429:
                delay = retry_after(answer.retry_after)
                self._on_rate_limited(channel)
                log.warning(
                    "Slack rate-limits channel %s: waiting %.1fs",
                    channel,
                    delay,
                    extra={"channel": channel, "retry_after": delay},
                )
                self._not_before[channel] = time.monotonic() + delay
                continue
            if answer.data is not None and answer.ok:
                return answer.data
            if _code_of(answer.data) == "not_in_channel" and not joined:
                joined = await self._join(channel)
                continue
            raise _failure(answer, channel)

    async def _ask(self, method: str, args: dict[str, Any]) -> Answer:
        try:
            return await self._api.call(method, args, as_json=method == "chat.postMessage")
        except (TimeoutError, aiohttp.ClientError) as error:
            raise SlackTransientError(
                f"cannot reach Slack ({type(error).__name__}: {error})"
            ) from None

    async def _join(self, channel: str) -> bool:
        """Join `channel`; False when rate-limited (the retried call waits, then joins again)."""
        log.info("joining Slack channel %s to post there", channel)
        answer = await self._ask("conversations.join", {"channel": channel})
        if answer.status == 429:
            self._not_before[channel] = time.monotonic() + retry_after(answer.retry_after)
            return False
        if answer.ok:
            return True
        raise _failure(answer, channel)


def _code_of(data: dict[str, Any] | None) -> str | None:
    code = data.get("error") if data is not None else None
    return str(code) if code else None


def _failure(answer: Answer, channel: str) -> Exception:
    """Ours for an answer that was not ok (and not a 429)."""
    if answer.data is None and answer.status < 400:
        return SlackTransientError("Slack sent an answer that is not a JSON object")
    return classify_answer(answer.status, _code_of(answer.data), answer.data is not None, channel)


def _find_in(messages: Any, document_id: str) -> str | None:
    """The ts of our post for `document_id` among a page of Slack messages."""
    if not isinstance(messages, list):
        return None
    for message in messages:
        if not isinstance(message, dict):
            continue
        meta = message.get("metadata")
        payload = meta.get("event_payload") if isinstance(meta, dict) else None
        if (
            isinstance(meta, dict)
            and meta.get("event_type") == EVENT_TYPE
            and isinstance(payload, dict)
            and payload.get("document_id") == document_id
            and isinstance(message.get("ts"), str)
        ):
            return str(message["ts"])
    return None


def retry_after(raw: str | None) -> float:
    """Seconds to wait after a 429: Slack's Retry-After header, clamped to a sane range.

    A value that is missing, not a number, negative, infinite or absurdly long would make a
    hot loop or stall a channel for a day; it is replaced, and the log says so.
    """
    try:
        value = float(str(raw)) if raw is not None else math.nan
    except ValueError:
        value = math.nan
    if MIN_RETRY_AFTER <= value <= MAX_RETRY_AFTER:
        return value
    # too short (a hot loop) or unreadable: Slack's usual second; too long: our ceiling
    clamped = MAX_RETRY_AFTER if value > MAX_RETRY_AFTER else DEFAULT_RETRY_AFTER
    if raw is not None:
        log.warning(
            "Slack sent an odd Retry-After (%r); waiting %.0fs instead",
            str(raw)[:40],
            clamped,
            extra={"cause": "odd_retry_after"},
        )
    return clamped
