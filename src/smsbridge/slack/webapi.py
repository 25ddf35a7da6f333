"""Slack's Web API, called directly over the process's one pooled HTTP session.

Every SMS takes this path (a post, and after a crash a history check), so it is kept lean: the
SDK's client spent about 0.1 ms of CPU per call around the HTTP request itself (its argument
handling, logging and response object), 40% of a post's CPU (bench/BENCHMARKS.md). The SDK's
client still serves Bolt and the `/sms` answers, over the same session, with the same token,
address, timeout, TLS settings and proxy, which are read from it here so the two never differ.

An answer is whatever Slack sent, bounded in size; deciding what it means (rate limit,
rejection, a transient fault) is the poster's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.errors import SlackTransientError

# The largest answer read: a page of 200 messages with their metadata is well under 1 MB.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    data: dict[str, Any] | None  # None: the body was not a JSON object
    retry_after: str | None  # the Retry-After header, as sent

    @property
    def ok(self) -> bool:
        """Slack did what was asked: HTTP 200 with `"ok": true`."""
        return self.status == 200 and self.data is not None and self.data.get("ok") is True


class WebApi:
    def __init__(self, client: AsyncWebClient) -> None:
        if client.session is None:
            raise ValueError("the Slack client has no session (make_client makes one)")
        self._session = client.session
        self._base_url = client.base_url
        self._ssl = client.ssl if client.ssl is not None else True  # True: aiohttp's default
        self._proxy = client.proxy or None
        self._timeout = aiohttp.ClientTimeout(total=client.timeout)
        self._headers = {"Authorization": f"Bearer {client.token}"}
        self._json_headers = self._headers | {"Content-Type": "application/json; charset=utf-8"}

    async def call(self, method: str, args: dict[str, Any], *, as_json: bool = False) -> Answer:
        """POST `args` (None values left out) to `method`, as JSON or as a form (the methods
        that read, and reactions, take forms). Raises aiohttp.ClientError or TimeoutError when
        no answer came, SlackTransientError when the answer is too large to read."""
        present = {key: value for key, value in args.items() if value is not None}
        if as_json:
            body: bytes | dict[str, str] = json.dumps(present, ensure_ascii=False).encode()
            headers = self._json_headers
        else:
            body = {key: _form_value(value) for key, value in present.items()}
            headers = self._headers
        async with self._session.post(
            self._base_url + method,
            data=body,
            headers=headers,
            timeout=self._timeout,
            ssl=self._ssl,
            proxy=self._proxy,
        ) as response:
            raw = await _read_bounded(response)
            retry_after = response.headers.get("Retry-After")
            status = response.status
        try:
            data = json.loads(raw)
        except ValueError:  # not JSON, or not text at all
            data = None
        return Answer(status, data if isinstance(data, dict) else None, retry_after)


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None and length <= MAX_ANSWER_BYTES:
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise SlackTransientError(f"Slack sent an answer over {MAX_ANSWER_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
