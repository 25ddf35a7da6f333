"""A subset of the Slack Web API over real HTTP, enough for the real AsyncWebClient.

auth.test, chat.postMessage, conversations.join/info/history/replies, users.info; bearer-token
check; Socket Mode (apps.connections.open with the app-level token, then a WebSocket that says
hello, carries envelopes to the app and takes its acknowledgements);
channels the bot must join before posting; message metadata returned only on request
(`include_all_metadata`); a per-channel rate limit answering 429 with `Retry-After`; fault
injection (forced 429s, HTTP 5xx, error codes) and an optional delay after a post is stored but
before it is answered, the window in which a crash leaves a post in doubt.

Hostile answers, for the hardening tests: a canned raw body (HTML, broken JSON, a JSON list,
`{"ok": true}` without a `ts`), any `Retry-After` text, and history that never stops paging.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

BOT_USER = "U0BRIDGE"
BOT_ID = "B0BRIDGE"


@dataclass
class SimChannel:
    id: str
    name: str
    archived: bool = False
    member: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Forced:
    """A canned answer for the next call(s) of `method` (on `channel`, if given)."""

    method: str
    channel: str | None
    status: int = 200
    error: str | None = None
    retry_after: int | str = 1  # sent as written: "-5" and "1e400" are fair game
    after_effect: bool = False  # do the call's work, then answer with this failure (lost answer)
    body: str | None = None  # answer exactly this body instead (with `content_type`)
    content_type: str = "application/json"


@dataclass(frozen=True)
class RawBody:
    text: str
    content_type: str


@dataclass
class SlackSim:
    token: str = "xoxb-sim-token"
    app_token: str = "xapp-sim-token"
    post_interval: float = 0.0  # seconds per post to one channel in the long run (0: no limit)
    post_burst: int = 1  # posts one channel takes at once after a quiet spell (a token bucket)
    post_delay: float = 0.0  # seconds between storing a post and answering it
    endless_cursor: bool = False  # history and replies always say there is another page
    clock: Callable[[], float] = time.time
    channels: dict[str, SimChannel] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # user id -> IANA time zone
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # S... -> member user ids
    forced: deque[Forced] = field(default_factory=deque)
    calls: list[tuple[float, str, str | None, int]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, at
    _retry_until: dict[str, float] = field(default_factory=dict)  # channel -> end of Retry-After
    early_posts: int = 0  # posts that came before the Retry-After we sent had passed
    # answers the bridge sent to a slash command's response_url (`/_sim/respond`): (time, body)
    responses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _responded: asyncio.Event = field(default_factory=asyncio.Event)
    # the connections API calls came over (client address and port), to show reuse
    connections: set[tuple[str, int]] = field(default_factory=set)
    sms_posts: list[tuple[float, str, str]] = field(default_factory=list)  # at, channel, id
    _posted: asyncio.Event = field(default_factory=asyncio.Event)
    _called: asyncio.Event = field(default_factory=asyncio.Event)
    _sockets: list[WebSocket] = field(default_factory=list)
    _socket_open: asyncio.Event = field(default_factory=asyncio.Event)
    socket_acks: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    # -- test and demo API --------------------------------------------------------------------

    def answered(self, status: int) -> int:
        """How many calls were answered with HTTP `status`."""
        return sum(1 for *_, answered in self.calls if answered == status)

    def add_channel(
        self, channel_id: str, name: str, *, member: bool = False, archived: bool = False
    ) -> SimChannel:
        channel = SimChannel(channel_id, name, archived=archived, member=member)
        self.channels[channel_id] = channel
        return channel

    def force(
        self, method: str, *, channel: str | None = None, times: int = 1, **answer: Any
    ) -> None:
        self.forced.extend(Forced(method, channel, **answer) for _ in range(times))

    def top_level(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m for m in self.channels[channel_id].messages if m.get("thread_ts") in (None, m["ts"])
        ]

    def replies(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.channels[channel_id].messages
            if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
        ]

    def all_messages(self) -> list[dict[str, Any]]:
        return [m for channel in self.channels.values() for m in channel.messages]

    def document_ids(self) -> list[str]:
        """The SMS document ids of every message posted, one entry per post."""
        return [
            m["metadata"]["event_payload"]["document_id"]
            for m in self.all_messages()
            if m.get("metadata", {}).get("event_type") == "sms_received"
        ]

    async def wait_for_sms(self, count: int) -> None:
        """Wait until at least `count` SMS have been posted in all (callers set a timeout)."""
        while len(self.document_ids()) < count:
            self._posted.clear()
            await self._posted.wait()

    async def wait_for_calls(self, method: str, count: int) -> None:
        """Wait until `method` has been called at least `count` times (callers set a timeout)."""
        while sum(1 for call in self.calls if call[1] == method) < count:
            self._called.clear()
            await self._called.wait()

    async def deliver(
        self, app_url: str, signing_secret: str, message: dict[str, Any], *, retry: int = 0
    ) -> int:
        """Deliver a `message` event to an app over HTTP, signed as Slack signs it, as a first
        delivery or as Slack's `retry`-th redelivery; returns the app's HTTP status."""
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0SIM",
                "api_app_id": "A0SMS",
                "event_id": f"Ev{message.get('ts', '')}{message.get('subtype', '')}",
                "event_time": int(self.clock()),
                "event": {"type": "message", "channel_type": "channel", **message},
            }
        )
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(
                SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
            ),
        }
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(f"{app_url}/slack/events", content=body, headers=headers)
        return answer.status_code

    async def wait_for_socket(self) -> None:
        """Until an app has connected through Socket Mode."""
        await self._socket_open.wait()

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Push an event to the connected app, as Slack does in Socket Mode; returns its id."""
        envelope_id = f"env-{next(self._seq)}"
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind == "slash_commands",
            }
        )
        return envelope_id

    async def _socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self._sockets.append(websocket)
        await websocket.send_json({"type": "hello", "num_connections": 1})
        self._socket_open.set()
        try:
            while True:
                await self.socket_acks.put(await websocket.receive_json())
        except WebSocketDisconnect:
            self._sockets.remove(websocket)
            if not self._sockets:
                self._socket_open.clear()

    # -- the API ------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                args.update(json.loads(await request.body() or b"{}"))
            else:
                args.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        channel = args.get("channel")
        now = self.clock()
        if request.client is not None:
            self.connections.add((request.client.host, request.client.port))
        headers: dict[str, str] = {}
        body: dict[str, Any] | RawBody
        if method == "apps.connections.open":
            # The one method called with the app-level token (xapp-), not the bot token.
            presented = request.headers.get("authorization", "").removeprefix("Bearer ")
            if (presented or args.get("token")) != self.app_token:
                status, body = 200, {"ok": False, "error": "invalid_auth"}
            else:
                url = request.base_url.replace(scheme="ws", path="/socket-mode")
                status, body = 200, {"ok": True, "url": str(url)}
        elif request.headers.get("authorization") != f"Bearer {self.token}":
            status, body = 200, {"ok": False, "error": "invalid_auth"}
        else:
            status, body, headers = await self._answer(method, args, channel, now)
        self.calls.append((now, method, channel, status))
        self._called.set()
        if isinstance(body, RawBody):
            return Response(
                body.text, status_code=status, headers=headers, media_type=body.content_type
            )
        return JSONResponse(body, status_code=status, headers=headers)

    async def _answer(
        self, method: str, args: dict[str, Any], channel: str | None, now: float
    ) -> tuple[int, dict[str, Any] | RawBody, dict[str, str]]:
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if channel is not None and now < self._retry_until.get(channel, -math.inf):
            self.early_posts += method == "chat.postMessage"
        for forced in list(self.forced):
            if forced.method == method and forced.channel in (None, channel):
                self.forced.remove(forced)
                if forced.after_effect and handler is not None:
                    result = handler(args)
                    if asyncio.iscoroutine(result):
                        await result
                if forced.body is not None:
                    return forced.status, RawBody(forced.body, forced.content_type), {}
                if forced.status == 429:
                    self._hold(channel, now, forced.retry_after)
                    return (
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": str(forced.retry_after)},
                    )
                if forced.status >= 500:
                    return (
                        forced.status,
                        {"ok": False, "error": forced.error or "internal_error"},
                        {},
                    )
                return 200, {"ok": False, "error": forced.error}, {}
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if method == "chat.postMessage" and channel in self.channels and self.post_interval:
            tokens = self._tokens(channel, now)
            if tokens < 1:
                after = math.ceil((1 - tokens) * self.post_interval)
                self._hold(channel, now, after)
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(after)}
        result = handler(args)
        if asyncio.iscoroutine(result):
            result = await result
        if method == "chat.postMessage" and channel and self.post_interval and result.get("ok"):
            self._buckets[channel] = (self._tokens(channel, now) - 1, now)  # a post spends one
        return 200, result, {}

    def _hold(self, channel: str | None, now: float, retry_after: int | str) -> None:
        """Remember a Retry-After we sent, to count posts that do not wait it out."""
        try:
            seconds = float(retry_after)
        except ValueError:
            return
        if channel is not None and 0 < seconds < math.inf:
            self._retry_until[channel] = now + seconds

    def _tokens(self, channel: str, now: float) -> float:
        """Slack's per-channel post limit as a token bucket: the posts it would take now."""
        tokens, at = self._buckets.get(channel, (float(self.post_burst), now))
        return min(float(self.post_burst), tokens + (now - at) / self.post_interval)

    def _channel(self, args: dict[str, Any]) -> SimChannel | dict[str, Any]:
        channel = self.channels.get(str(args.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return channel

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://sim.slack.invalid/",
            "team": "Sim Team",
            "user": "smsbridge",
            "team_id": "T0SIM",
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    async def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        if channel.archived:
            return {"ok": False, "error": "is_archived"}
        if not channel.member:
            return {"ok": False, "error": "not_in_channel"}
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        ts = f"{int(self.clock())}.{next(self._seq):06d}"
        message: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": args.get("text", ""),
            "blocks": blocks or [],
            "unfurl_links": args.get("unfurl_links"),
            "unfurl_media": args.get("unfurl_media"),
        }
        if metadata:
            message["metadata"] = metadata
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
            if str(args.get("reply_broadcast", "")).lower() in ("1", "true"):
                message["subtype"] = "thread_broadcast"  # shown in the channel as well
        channel.messages.append(message)
        if (
            isinstance(metadata := message.get("metadata"), dict)
            and metadata.get("event_type") == "sms_received"
        ):
            document_id = str(metadata.get("event_payload", {}).get("document_id"))
            self.sms_posts.append((time.time(), channel.id, document_id))
        self._posted.set()
        if self.post_delay:
            await asyncio.sleep(self.post_delay)
        return {"ok": True, "channel": channel.id, "ts": ts, "message": message}

    def _reaction(self, args: dict[str, Any], add: bool) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        found = [m for m in channel.messages if m["ts"] == str(args.get("timestamp"))]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        reactions: list[str] = found[0].setdefault("reactions", [])
        name = str(args.get("name"))
        if add and name in reactions:
            return {"ok": False, "error": "already_reacted"}
        if not add and name not in reactions:
            return {"ok": False, "error": "no_reaction"}
        (reactions.append if add else reactions.remove)(name)
        return {"ok": True}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._reaction(args, add=True)

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._reaction(args, add=False)

    def say(self, channel_id: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """A person writes in a channel (or a thread); returns the message's ts."""
        ts = f"{int(self.clock())}.{next(self._seq):06d}"
        message: dict[str, Any] = {"type": "message", "ts": ts, "user": user, "text": text}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.channels[channel_id].messages.append(message)
        return ts

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.usergroups[group]}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user"))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user, "tz": self.users[user]}}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        if channel.archived:
            return {"ok": False, "error": "is_archived"}
        channel.member = True
        return {"ok": True, "channel": self._info(channel)}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        return {"ok": True, "channel": self._info(channel)}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        if not channel.member:
            return {"ok": False, "error": "not_in_channel"}
        oldest = float(args.get("oldest") or 0)
        found = [m for m in self.top_level(channel.id) if float(m["ts"]) >= oldest]
        return self._page(list(reversed(found)), args)  # newest first, as Slack does

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if isinstance(channel, dict):
            return channel
        if not channel.member:
            return {"ok": False, "error": "not_in_channel"}
        ts = str(args.get("ts"))
        thread = [m for m in channel.messages if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return self._page(thread, args)

    def _page(self, messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        chunk = messages[start : start + limit]
        if not with_metadata:
            chunk = [{k: v for k, v in m.items() if k != "metadata"} for m in chunk]
        more = self.endless_cursor or start + limit < len(messages)
        return {
            "ok": True,
            "messages": chunk,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    @staticmethod
    def _info(channel: SimChannel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": True,
            "is_archived": channel.archived,
            "is_member": channel.member,
        }

    async def _control_posts(self, request: Request) -> Response:
        """SMS posts from the `after`-th on, as [time, channel, document id]; waits up to
        `wait` seconds (at most 10) for one more when there is none yet."""
        after = int(request.query_params.get("after", "0"))
        wait = min(10.0, float(request.query_params.get("wait", "0")))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while len(self.sms_posts) <= after:
                    self._posted.clear()
                    await self._posted.wait()
        return JSONResponse(self.sms_posts[after : after + 10_000])

    async def _control_stats(self, _: Request) -> Response:
        """Posts answered 429, posts that came before the Retry-After we sent had passed, and
        how many connections the Web API calls came over."""
        return JSONResponse(
            {
                "rate_limited": self.answered(429),
                "early_posts": self.early_posts,
                "connections": len(self.connections),
                "calls": len(self.calls),
            }
        )

    async def _respond(self, request: Request) -> Response:
        """Where a slash command's `response_url` points: Slack shows the answer to its user."""
        self.responses.append((self.clock(), await request.json()))
        self._responded.set()
        return Response("ok")

    async def _control_responses(self, request: Request) -> Response:
        """Answers received at `/_sim/respond` from the `after`-th on, as [time, body]; waits up
        to `wait` seconds (at most 10) for one more when there is none yet."""
        after = int(request.query_params.get("after", "0"))
        wait = min(10.0, float(request.query_params.get("wait", "0")))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while len(self.responses) <= after:
                    self._responded.clear()
                    await self._responded.wait()
        return JSONResponse(self.responses[after : after + 1000])

    async def _control_channels(self, request: Request) -> Response:
        """Add channels the bot is a member of: [{"id": "C0…", "name": "…"}]."""
        for item in await request.json():
            self.add_channel(str(item["id"]), str(item.get("name", item["id"])), member=True)
        return JSONResponse(sorted(self.channels))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._dispatch, methods=["GET", "POST"]),
                Route("/_sim/posts", self._control_posts, methods=["GET"]),
                Route("/_sim/channels", self._control_channels, methods=["POST"]),
                Route("/_sim/stats", self._control_stats, methods=["GET"]),
                Route("/_sim/respond", self._respond, methods=["POST"]),
                Route("/_sim/responses", self._control_responses, methods=["GET"]),
                WebSocketRoute("/socket-mode", self._socket),
            ]
        )
