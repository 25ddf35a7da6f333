"""The HTTP side of `smsbridge run`: health, readiness, metrics and Slack's requests.

`$PORT` is public (Slack must reach it), so nothing here tells a stranger more than a fixed
word: `/readyz` names causes such as `provider_rejected`, never an error's text. `/metrics`
asks for a bearer token when one is set (SMSBRIDGE_METRICS_TOKEN), compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def build_web_app(
    not_ready: Callable[[], Awaitable[list[str]]],
    metrics: Callable[[], bytes],
    slack_events: tuple[str, Endpoint] | None = None,
    extra: list[tuple[str, Endpoint, list[str]]] | None = None,
    metrics_token: str | None = None,
) -> Starlette:
    expected = f"Bearer {metrics_token}".encode() if metrics_token else None

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> JSONResponse:
        causes = await not_ready()
        if not causes:
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "not ready", "reason": ",".join(causes), "causes": causes},
            status_code=503,
        )

    async def metrics_endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"error": "metrics need Authorization: Bearer <SMSBRIDGE_METRICS_TOKEN>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(metrics(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    if slack_events is not None:
        path, endpoint = slack_events
        routes.append(Route(path, endpoint, methods=["POST"]))
    for path, endpoint, methods in extra or []:
        routes.append(Route(path, endpoint, methods=methods))
    return Starlette(routes=routes)
