"""The gateway's pushes over HTTP: the secret in the path checked in constant time, the body
bounded, nothing stored from a request that cannot be read."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from sqlalchemy.exc import DBAPIError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from smsbridge.provider.push import read_status_push

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # a status is a few fields
BODY_DEADLINE = 10.0
STATUS_PATH = "/provider/status/{token}"
PUSH_PATH = "/provider/push/{token}"

Handler = Callable[[dict[str, str]], Awaitable[str]]


def push_endpoint(
    token: str, handle: Handler, on_rejected: Callable[[str], None] = lambda cause: None
) -> Callable[[Request], Awaitable[Response]]:
    """A URL the gateway calls: `handle(fields)` answers 200 with its text, or raises
    ValueError (400: the push cannot be read, nothing is stored) or a database error (503:
    the gateway may retry, and polling catches the SMS anyway)."""
    secret = token.encode()

    async def endpoint(request: Request) -> Response:
        given = str(request.path_params.get("token", "")).encode()
        if not hmac.compare_digest(given, secret):
            on_rejected("wrong_token")
            return PlainTextResponse("Not Found", status_code=404)
        fields: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            try:
                fields.update(await _read_fields(request))
            except (ValueError, UnicodeDecodeError) as error:
                on_rejected("unreadable")
                return PlainTextResponse(f"unreadable body: {error}", status_code=400)
            except (TimeoutError, ClientDisconnect):
                on_rejected("slow_body")
                return PlainTextResponse("body not sent in time", status_code=408)
        try:
            answer = await handle(fields)
        except ValueError as error:
            on_rejected("unreadable")
            return PlainTextResponse(str(error), status_code=400)
        except (DBAPIError, OSError):
            on_rejected("database_unavailable")
            return PlainTextResponse("database unavailable, try again", status_code=503)
        return PlainTextResponse(answer)

    return endpoint


def status_handler(record: Callable[[str, int], Awaitable[bool]]) -> Handler:
    """A pushed delivery status; `record(provider id, status)` is True for one of ours."""

    async def handle(fields: dict[str, str]) -> str:
        ident, status = read_status_push(fields)
        return "ok" if await record(ident, status) else "ok (not an SMS sent from Slack)"

    return handle


async def _read_fields(request: Request) -> dict[str, str]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise ValueError(f"over {MAX_BODY} bytes")
    body = b""
    async with asyncio.timeout(BODY_DEADLINE):
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ValueError(f"over {MAX_BODY} bytes")
    text = body.decode("utf-8")
    if request.headers.get("content-type", "").startswith("application/json"):
        document = json.loads(text or "{}")
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return {str(key): str(value) for key, value in document.items()}
    return dict(parse_qsl(text, keep_blank_values=True))
