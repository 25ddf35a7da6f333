"""The Slack app: Bolt's AsyncApp serving `/sms`, over HTTP (Starlette) or Socket Mode.

Bolt verifies every request's signature and refuses requests older than five minutes (401).
The command is acknowledged at once; the answer follows through `response_url`, so a slow
provider never runs into Slack's three-second limit.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response

from smsbridge.errors import SlackAuthError, SlackTransientError
from smsbridge.slack.commands import COMMAND, SmsCommand
from smsbridge.slack.poster import AUTH_ERRORS

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def build_bolt_app(client: AsyncWebClient, signing_secret: str, sms: SmsCommand) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=signing_secret, logger=log)

    # Bolt passes listener arguments by name: `command` is the slash command's payload.
    @app.command(COMMAND)
    async def handle(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        answer = await sms.answer(command)
        await respond(
            text=answer.text,
            blocks=answer.blocks,
            response_type="ephemeral",
            replace_original=False,
        )

    return app


def http_endpoint(app: AsyncApp) -> Any:
    handler = AsyncSlackRequestHandler(app)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)

    return endpoint


async def connect_socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Connect out to Slack; a rejected app token is a fatal configuration error.

    The SDK retries a failed connection forever, so the token is tried once here first.
    """
    try:
        await app.client.apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        if code in AUTH_ERRORS:
            raise SlackAuthError(str(code), token="app") from None
        raise SlackTransientError(f"Socket Mode cannot start: {code or error}") from None
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack through Socket Mode")
    return handler
