"""The Slack app: Bolt's AsyncApp serving `/sms`, over HTTP (Starlette) or Socket Mode.

The HTTP endpoint is on the public port, so it guards Bolt before Bolt sees a byte: a body over
MAX_BODY is refused (413) before it is read, a body must arrive within BODY_DEADLINE, and the
signature is checked on the raw bytes before anything is parsed (401; 400 for a timestamp that
is not a number or a body that is not UTF-8). Requests older than five minutes are refused.
The command is acknowledged at once; the answer follows through `response_url`, so a slow
provider never runs into Slack's three-second limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from smsbridge.errors import SlackAuthError, SlackTransientError
from smsbridge.slack.errors import AUTH_ERRORS, error_code
from smsbridge.slash.command import COMMAND, SmsCommand
from smsbridge.slash.replies import ReplyIntake

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY = 64 * 1024  # Slack's requests are a few KB; this is generous
BODY_DEADLINE = 10.0  # seconds for the whole body to arrive


class _TooLarge(Exception):
    pass


class _SameTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN "will be unused" because we give it our client: but
    that client was made from that very token, so Bolt and the poster share one pooled
    session. The warning would only confuse an operator at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_bolt_app(
    client: AsyncWebClient,
    signing_secret: str,
    sms: SmsCommand,
    replies: ReplyIntake,
    answering: set[asyncio.Task[None]],
) -> AsyncApp:
    """`answering` holds the `/sms` answers still running, for the caller to await at the
    end."""
    # process_before_response: Slack's event is answered only after its listener returns, so a
    # thread reply is in the outbox before Slack hears "got it" (a database failure answers
    # 500, and Slack delivers the event again). `/sms` acknowledges at once and answers later.
    if not any(isinstance(f, _SameTokenNotice) for f in log.filters):
        log.addFilter(_SameTokenNotice())  # Bolt logs through the logger we give it
    app = AsyncApp(
        client=client, signing_secret=signing_secret, logger=log, process_before_response=True
    )

    async def answer(command: dict[str, Any], respond: Any) -> None:
        try:
            reply = await sms.answer(command)
            await respond(
                text=reply.text,
                blocks=reply.blocks,
                response_type="ephemeral",
                replace_original=False,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:  # Slack unreachable
            log.warning("could not deliver the /sms answer to Slack (%s)", type(error).__name__)
        except Exception:  # a bug: the person sees no answer, the log says why
            log.exception("could not answer /sms")

    # Bolt passes listener arguments by name: `command` is the slash command's payload. The
    # answer runs on after the acknowledgement, as a task of ours rather than Bolt's lazy
    # listener: that one deep-copies the request, the shared HTTP session of the Slack client
    # included, which cannot be copied (and should not be: one pool for the whole process).
    async def acknowledge_then_answer(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        task = asyncio.create_task(answer(command, respond), name="answer /sms")
        answering.add(task)
        task.add_done_callback(answering.discard)

    app.command(COMMAND)(acknowledge_then_answer)

    @app.event("message")
    async def message(event: dict[str, Any]) -> None:
        await replies.receive(event)

    return app


def http_endpoint(
    app: AsyncApp, signing_secret: str, on_rejected: Callable[[str], None] = lambda cause: None
) -> Any:
    """Slack's requests, checked (size, time, signature) before Bolt parses anything."""
    verifier = SignatureVerifier(signing_secret)

    def refuse(status: int, cause: str, reason: str) -> Response:
        on_rejected(cause)
        return PlainTextResponse(reason, status_code=status)

    async def endpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return refuse(413, "too_large", f"request body over {MAX_BODY} bytes")
        # The headers first: a request that cannot be signed is refused before its body is read.
        stamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not stamp or not signature:
            return refuse(401, "unsigned", "missing Slack signature headers")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return refuse(400, "bad_timestamp", "X-Slack-Request-Timestamp is not a number")
        try:
            async with asyncio.timeout(BODY_DEADLINE):
                body = await _read_body(request)
        except _TooLarge:
            return refuse(413, "too_large", f"request body over {MAX_BODY} bytes")
        except TimeoutError:
            return refuse(408, "slow_body", f"request body not sent within {BODY_DEADLINE:g}s")
        except ClientDisconnect:
            log.info("a client disconnected while sending a request to %s", EVENTS_PATH)
            return refuse(400, "disconnected", "client disconnected")
        try:
            valid = verifier.is_valid(body=body, timestamp=stamp, signature=signature)
        except UnicodeDecodeError:
            return refuse(400, "not_utf8", "request body is not UTF-8")
        if not valid:
            return refuse(401, "bad_signature", "invalid or expired Slack signature")
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8"),
            query=request.query_params,  # type: ignore[arg-type]
            headers=request.headers,  # type: ignore[arg-type]
        )
        return to_starlette_response(await app.async_dispatch(bolt_request))

    return endpoint


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def connect_socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Connect out to Slack; a rejected app token is a fatal configuration error.

    The SDK retries a failed connection forever, so the token is tried once here first.
    """
    try:
        await app.client.apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        code = error_code(error)[1]
        if code in AUTH_ERRORS:
            raise SlackAuthError(str(code), token="app") from None
        raise SlackTransientError(f"Socket Mode cannot start: {code or error}") from None
    # Imported here: only Socket Mode needs it, and it was 60 ms of every start-up.
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack through Socket Mode")
    return handler
