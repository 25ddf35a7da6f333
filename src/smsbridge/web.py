"""The HTTP side of `smsbridge run`: health and readiness (Slack's requests join in issue 3)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build_web_app(ready: Callable[[], bool], last_error: Callable[[], str | None]) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> JSONResponse:
        if ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "not ready", "reason": last_error() or "no successful poll yet"},
            status_code=503,
        )

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])
