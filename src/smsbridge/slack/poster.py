"""SlackPoster: post one rendered SMS, and find out whether an earlier attempt already did.

Rate limits are per channel: a 429 makes only that channel wait its `Retry-After`, because each
channel is served by its own delivery worker. `not_in_channel` joins and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from smsbridge.errors import SlackAuthError, SlackRejectedError, SlackTransientError
from smsbridge.slack.render import EVENT_TYPE, SlackMessage

log = logging.getLogger(__name__)

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
    }
)
DEFAULT_RETRY_AFTER = 1.0

Sleep = Callable[[float], Awaitable[None]]


def make_client(token: str, api_url: str, timeout: int) -> AsyncWebClient:
    """The SDK client, with its own retry handlers off: we retry per channel, in one place."""
    return AsyncWebClient(token=token, base_url=api_url, retry_handlers=[], timeout=timeout)


def classify(error: SlackApiError, channel: str) -> Exception:
    """Map an SDK error to ours. 429 and not_in_channel are handled before this is called."""
    response = error.response
    code = response.get("error") if isinstance(response.data, dict) else None
    if code in AUTH_ERRORS:
        return SlackAuthError(str(code))
    if response.status_code >= 500 or code in (
        "internal_error",
        "fatal_error",
        "service_unavailable",
    ):
        return SlackTransientError(
            f"Slack answered HTTP {response.status_code} ({code or 'no error code'})"
        )
    return SlackRejectedError(channel, str(code or f"HTTP {response.status_code}"))


class SlackPoster:
    def __init__(
        self,
        client: AsyncWebClient,
        sleep: Sleep = asyncio.sleep,
        on_rate_limited: Callable[[str], None] = lambda channel: None,
        post_interval: float = 0.0,
    ) -> None:
        self._client = client
        # Slack allows about one message per second per channel: pacing posts ourselves avoids
        # a 429 (and a lost second) on every post of a backlog. 429s still pause the channel.
        self._post_interval = post_interval
        self._sleep = sleep
        self._on_rate_limited = on_rate_limited
        self._not_before: dict[str, float] = {}  # channel -> monotonic time of the next call

    async def post(
        self,
        channel: str,
        message: SlackMessage,
        thread_ts: str | None,
        *,
        reply_broadcast: bool = False,
    ) -> str:
        """Post and return the message's ts."""
        response = await self._call(
            "chat_postMessage",
            channel,
            text=message.text,
            blocks=message.blocks,
            metadata=message.metadata,
            thread_ts=thread_ts,
            reply_broadcast=reply_broadcast or None,
            unfurl_links=False,
            unfurl_media=False,
        )
        if self._post_interval:
            self._not_before[channel] = time.monotonic() + self._post_interval
        return str(response["ts"])

    async def find_posted(
        self, channel: str, document_id: str, thread_ts: str | None, oldest: float
    ) -> str | None:
        """The ts of a message we posted for `document_id`, if an earlier attempt got through.

        Replies are looked up in their thread, top-level messages in the channel's history
        since `oldest`; both matched by the ids in our message metadata.
        """
        cursor: str | None = None
        while True:
            if thread_ts:
                response = await self._call(
                    "conversations_replies",
                    channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            else:
                response = await self._call(
                    "conversations_history",
                    channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            for message in response.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == EVENT_TYPE
                    and payload.get("document_id") == document_id
                ):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    async def _call(self, method: str, channel: str, **kwargs: Any) -> AsyncSlackResponse:
        joined = False
        while True:
            wait = self._not_before.get(channel, 0.0) - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
            try:
                response: AsyncSlackResponse = await getattr(self._client, method)(
                    channel=channel, **kwargs
                )
                return response
            except SlackApiError as error:
                response = error.response
                if response.status_code == 429:
                    delay = _retry_after(response)
                    self._on_rate_limited(channel)
                    log.warning(
                        "Slack rate-limits channel %s: waiting %.1fs",
                        channel,
                        delay,
                        extra={"channel": channel, "retry_after": delay},
                    )
                    self._not_before[channel] = time.monotonic() + delay
                    continue
                if response.get("error") == "not_in_channel" and not joined:
                    joined = await self._join(channel)
                    continue
                raise classify(error, channel) from None
            except (TimeoutError, aiohttp.ClientError) as error:
                raise SlackTransientError(
                    f"cannot reach Slack ({type(error).__name__}: {error})"
                ) from None

    async def _join(self, channel: str) -> bool:
        """Join `channel`; False when rate-limited (the retried call waits, then joins again)."""
        log.info("joining Slack channel %s to post there", channel)
        try:
            await self._client.conversations_join(channel=channel)
        except SlackApiError as error:
            if error.response.status_code == 429:
                self._not_before[channel] = time.monotonic() + _retry_after(error.response)
                return False
            raise classify(error, channel) from None
        except (TimeoutError, aiohttp.ClientError) as error:
            raise SlackTransientError(f"cannot reach Slack ({type(error).__name__})") from None
        return True


def _retry_after(response: AsyncSlackResponse) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", DEFAULT_RETRY_AFTER)))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
