"""The SMS provider's messages endpoint, as documented, over real HTTP.

- GET (query) and POST (form) on /services/rest/user/messages, validation and status codes
  0, 1, 2, 3, 4, 200, 220, 9999; pages of at most 100, oldest first; a capped collection;
- 24-hex string ids by default (or integers), numbers as strings (or JSON numbers);
- `since` inclusive or exclusive, chosen per instance, since the documentation does not say;
- fault injection: HTTP 500/503, any documented error status, malformed or truncated JSON,
  slow answers, a `newestMessageTimestamp` that goes backwards;
- a hostile gateway: an error page that echoes the form (password included), a body dripped a
  byte at a time, a page with more messages than a page holds, a body of many megabytes, and
  `bad_records` (raw records returned with every page, as a gateway with one broken record
  would); future stamps and huge texts are plain `add(...)` calls;
- a small control API under /_sim/ to add messages and faults from another process.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MESSAGES_PATH = "/services/rest/user/messages"
SEND_PATH = "/services/rest/message/sendSingle2"
STATUS_PATH = "/services/rest/message/status"
ALL_MESSAGES_PATH = "/services/rest/user/allMessages"


class Fault(Enum):
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    STATUS_9999 = "status_9999"
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_JSON = "truncated_json"
    SLOW = "slow"
    NEWEST_BACKWARDS = "newest_backwards"
    STATUS_1 = "status_1"
    STATUS_2 = "status_2"
    STATUS_3 = "status_3"
    STATUS_4 = "status_4"
    STATUS_200 = "status_200"
    STATUS_220 = "status_220"
    ECHO_FORM = "echo_form"  # HTTP 500 whose page echoes the request, password and all
    DRIP = "drip"  # a valid page, one byte every `drip_seconds`
    OVERSIZED_PAGE = "oversized_page"  # more messages than `page_size`
    HUGE_BODY = "huge_body"  # a status-0 page of about 6 MB


@dataclass(frozen=True)
class SimSms:
    document_id: str
    sender: str
    recipient: str
    timestamp: int
    text: str
    origin: str | None = None


@dataclass
class Account:
    password: str
    blocked: bool = False
    active: bool = True
    credit: int | None = None  # SMS parts it may still send; None: no limit


@dataclass(frozen=True)
class SimSent:
    """An SMS the bridge sent through `sendSingle2`."""

    document_id: str
    account: str
    recipient: str
    sender: str
    text: str
    timestamp: int


@dataclass
class ProviderSim:
    inclusive: bool = True
    integer_ids: bool = False
    numeric_numbers: bool = False
    with_recipient: bool = True
    with_has_more: bool = True
    capacity: int = 10_000
    page_size: int = 100
    slow_seconds: float = 2.0
    drip_seconds: float = 0.2
    clock: Callable[[], float] = time.time
    accounts: dict[str, Account] = field(
        default_factory=lambda: {"demo@reseller": Account(password="demo password & more")}
    )
    messages: deque[SimSms] = field(init=False)  # the inbox of the first account
    inboxes: dict[str, deque[SimSms]] = field(init=False)  # each account sees only its own
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_records: list[Any] = field(default_factory=list)  # sent with every page, as they are
    sent: list[SimSent] = field(default_factory=list)  # what `sendSingle2` was asked to send
    _sent_changed: asyncio.Event = field(default_factory=asyncio.Event)
    send_requested: asyncio.Event = field(default_factory=asyncio.Event)  # a send arrived
    statuses: dict[str, int] = field(default_factory=dict)  # delivery status per sent id
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.messages = deque(maxlen=self.capacity)  # the capped collection
        self.inboxes = {next(iter(self.accounts)): self.messages}

    def inbox(self, username: str) -> deque[SimSms]:
        if username not in self.inboxes:
            self.inboxes[username] = deque(maxlen=self.capacity)
        return self.inboxes[username]

    # -- test and demo API --------------------------------------------------------------------

    def new_id(self) -> str:
        number = next(self._ids)
        return str(number) if self.integer_ids else f"{0x5175_0000 + number:08x}{number:016x}"

    def add(
        self,
        sender: str,
        text: str,
        *,
        recipient: str = "61411001001",
        origin: str | None = None,
        timestamp: int | None = None,
        account: str | None = None,
        document_id: str | None = None,
    ) -> SimSms:
        """A new inbound SMS in `account`'s inbox (by default the first account's); its id is
        new unless given (two accounts' inboxes may hold the same id)."""
        inbox = self.messages if account is None else self.inbox(account)
        sms = SimSms(
            document_id=document_id or self.new_id(),
            sender=sender,
            recipient=recipient,
            timestamp=int(self.clock()) if timestamp is None else timestamp,
            text=text,
            origin=origin,
        )
        # The collection is ordered by timestamp; a late message with an older stamp goes in
        # its place, as a database index would return it.
        if inbox and inbox[-1].timestamp > sms.timestamp:
            ordered = sorted([*inbox, sms], key=lambda m: m.timestamp)
            inbox.clear()
            inbox.extend(ordered[-self.capacity :])
        else:
            inbox.append(sms)
        return sms

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    # -- the endpoint -------------------------------------------------------------------------

    def reply_to(self, sent: SimSent, text: str, *, timestamp: int | None = None) -> SimSms:
        """The customer answers an SMS the bridge sent: it arrives with its id as origin."""
        return self.add(
            sent.recipient,
            text,
            recipient=sent.sender or "61400000000",
            origin=sent.document_id,
            timestamp=timestamp,
            account=sent.account,
        )

    def _refusal(self, params: dict[str, str]) -> dict[str, Any] | None:
        """The status for bad credentials or a blocked account, as both endpoints answer it."""
        username, password = params.get("username"), params.get("password")
        if not username or not password:
            return {"status": 1}
        if any(ch.isspace() for ch in username):
            return {"status": 2}
        account = self.accounts.get(username)
        if account is None:
            return {"status": 200}
        if account.password != password:
            return {"status": 3}
        if account.blocked:
            return {"status": 4}
        if not account.active:
            return {"status": 220}
        return None

    def send(self, params: dict[str, str]) -> dict[str, Any]:
        """`sendSingle2`: store the SMS and answer its new id (or the status that refuses it)."""
        refused = self._refusal(params)
        if refused is not None:
            return refused
        recipient, text = params.get("recipient", ""), params.get("text")
        if text is None or not recipient:
            return {"status": 1}
        if not recipient.isdigit():
            return {"status": 2}
        account = self.accounts[params["username"]]
        if account.credit is not None:
            if account.credit <= 0:
                return {"status": 320}
            account.credit -= 1
        sent = SimSent(
            document_id=self.new_id(),
            account=params["username"],
            recipient=recipient,
            sender=params.get("sender", ""),
            text=text,
            timestamp=int(self.clock()),
        )
        self.sent.append(sent)
        self._sent_changed.set()
        return {"status": 0, "documentId": sent.document_id}

    async def wait_for_sent(self, count: int) -> None:
        """Until `count` SMS have been sent (callers set a timeout)."""
        while len(self.sent) < count:
            self._sent_changed.clear()
            await self._sent_changed.wait()

    def all_messages(self, params: dict[str, str]) -> dict[str, Any]:
        """`allMessages`: the inbox page, with our outgoing SMS from `since` beside it."""
        body = self.answer(params)
        if body.get("status") != 0:
            return body
        start = int(params["since"])
        outgoing = [
            {
                "documentId": sent.document_id,
                "recipient": sent.recipient,
                "text": sent.text,
                "timestamp": sent.timestamp,
            }
            for sent in self.sent
            if sent.account == params["username"] and sent.timestamp >= start
        ][: self.page_size]
        return {**body, "incomingMessages": body.pop("messages"), "outgoingMessages": outgoing}

    def answer(self, params: dict[str, str]) -> dict[str, Any]:
        """The JSON document for one request (status codes as documented)."""
        refused = self._refusal(params)
        if refused is not None:
            return refused
        username, since = params["username"], params.get("since")
        if since is None or since == "":
            return {"status": 1}
        if not since.lstrip("-").isdigit():
            return {"status": 2}
        start = int(since)
        inbox = self.inbox(username)
        # The inbox is ordered by timestamp: find the first match by bisection, so a large
        # inbox (a benchmark's backlog) costs a page, not a scan, per request.
        first = bisect.bisect_left(
            inbox, start if self.inclusive else start + 1, key=lambda sms: sms.timestamp
        )
        matching = list(itertools.islice(inbox, first, first + self.page_size + 1))
        page = matching[: self.page_size]
        wire: list[Any] = [self._wire(sms) for sms in page]
        room = self.page_size - len(wire)
        wire.extend(self.bad_records[:room])
        body: dict[str, Any] = {
            "status": 0,
            "messages": wire,
            "newestMessageTimestamp": page[-1].timestamp if page else start,
        }
        if self.with_has_more:
            body["hasMoreMessages"] = len(matching) > len(page)
        return body

    def _wire(self, sms: SimSms) -> dict[str, Any]:
        def number(value: str) -> str | int:
            return int(value) if self.numeric_numbers else value

        def ident(value: str) -> str | int:
            return int(value) if self.integer_ids else value

        wire: dict[str, Any] = {
            "from": number(sms.sender),
            "documentId": ident(sms.document_id),
            "timestamp": sms.timestamp,
            "text": sms.text,
        }
        if self.with_recipient:
            wire["recipient"] = number(sms.recipient)
        if sms.origin is not None:
            wire["originDocumentId"] = ident(sms.origin)
        return wire

    async def _send_endpoint(self, request: Request) -> Response:
        params = await self._params(request)
        self.send_requested.set()
        fault = self.faults.popleft() if self.faults else None
        if fault is Fault.HTTP_500:
            return Response("Internal Server Error", status_code=500)
        if fault is not None and fault.value.startswith("status_"):
            return JSONResponse({"status": int(fault.value.removeprefix("status_"))})
        if fault is Fault.SLOW:  # the SMS goes out, but the answer comes too late
            await asyncio.sleep(self.slow_seconds)
        return JSONResponse(self.send(params))

    async def _status_endpoint(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._refusal(params)
        if refused is not None:
            return JSONResponse(refused)
        sent = {sms.document_id: sms for sms in self.sent}
        ident = params.get("documentId", "")
        if ident not in sent:
            return JSONResponse({"status": 2})
        if self.clock() - sent[ident].timestamp < 1:
            return JSONResponse({"status": -230})  # asked too soon, as documented
        return JSONResponse({"status": 0, "messageStatus": self.statuses.get(ident, 11)})

    async def _all_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.all_messages(await self._params(request)))

    async def _params(self, request: Request) -> dict[str, str]:
        """Query parameters, and a POST body's fields: a form, or the newer JSON shape."""
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            body = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                document = json.loads(body or b"{}")
                if isinstance(document, dict):
                    params.update({key: str(value) for key, value in document.items()})
            else:
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
        return params

    async def _endpoint(self, request: Request) -> Response:
        params = await self._params(request)
        self.requests.append(
            {
                "method": request.method,
                "url": str(request.url),
                "username": params.get("username"),
                "since": params.get("since"),
            }
        )
        fault = self.faults.popleft() if self.faults else None
        if fault is Fault.HTTP_500:
            return Response("Internal Server Error", status_code=500)
        if fault is Fault.HTTP_503:
            return Response("Service Unavailable", status_code=503)
        if fault is not None and fault.value.startswith("status_"):
            return JSONResponse({"status": int(fault.value.removeprefix("status_"))})
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_seconds)
        if fault is Fault.ECHO_FORM:
            echoed = "".join(f"<li>{key}={value}</li>" for key, value in params.items())
            return HTMLResponse(f"<h1>Error</h1><ul>{echoed}</ul>", status_code=500)
        body = self.answer(params)
        if fault is Fault.DRIP:
            return StreamingResponse(
                self._drip(json.dumps(body).encode()), media_type="application/json"
            )
        if fault is Fault.OVERSIZED_PAGE and body.get("status") == 0:
            extra = {"from": "61400000000", "timestamp": int(self.clock()), "text": "x"}
            body["messages"] += [
                {**extra, "documentId": f"extra{n}"} for n in range(self.page_size + 1)
            ]
        if fault is Fault.HUGE_BODY and body.get("status") == 0:
            body["messages"] = [
                {
                    "from": "61400000000",
                    "documentId": "huge",
                    "timestamp": 1,
                    "text": "y" * 6_000_000,
                }
            ]
        if fault is Fault.MALFORMED_JSON:
            return Response(
                "{ newestMessageTimestamp = 123458 , messages = [", media_type="application/json"
            )
        if fault is Fault.TRUNCATED_JSON:
            text = json.dumps(body)
            return Response(text[: max(1, len(text) // 2)], media_type="application/json")
        if fault is Fault.NEWEST_BACKWARDS and body.get("status") == 0:
            body["newestMessageTimestamp"] = 0
        # The gateway's own clock, which also stamps its messages. ASCII JSON, as many gateways
        # send it: any text can travel, half an emoji's surrogate pair included (`\ud83d`).
        return Response(
            json.dumps(body),
            media_type="application/json",
            headers={"Date": formatdate(self.clock(), usegmt=True)},
        )

    async def _drip(self, body: bytes) -> Any:
        for index in range(len(body)):
            yield body[index : index + 1]
            await asyncio.sleep(self.drip_seconds)

    # -- control API (for `smsbridge sim provider` and tests that run the bridge elsewhere) ----

    async def _control_add(self, request: Request) -> Response:
        data = await request.json()
        items = data if isinstance(data, list) else [data]
        added = [
            self.add(
                str(item["from"]),
                str(item.get("text", "")),
                recipient=str(item.get("recipient", "61411001001")),
                origin=item.get("originDocumentId"),
                timestamp=item.get("timestamp"),
            )
            for item in items
        ]
        return JSONResponse([self._wire(sms) for sms in added])

    async def _control_fault(self, request: Request) -> Response:
        data = await request.json()
        self.inject(Fault(data["fault"]), int(data.get("times", 1)))
        return JSONResponse({"queued": [fault.value for fault in self.faults]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(MESSAGES_PATH, self._endpoint, methods=["GET", "POST"]),
                Route(SEND_PATH, self._send_endpoint, methods=["GET", "POST"]),
                Route(ALL_MESSAGES_PATH, self._all_endpoint, methods=["GET", "POST"]),
                Route(STATUS_PATH, self._status_endpoint, methods=["GET", "POST"]),
                Route("/_sim/messages", self._control_add, methods=["POST"]),
                Route("/_sim/faults", self._control_fault, methods=["POST"]),
            ]
        )
