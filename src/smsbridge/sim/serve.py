"""Serve an ASGI app with uvicorn on a loopback port, inside the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from smsbridge.embedded_server import EmbeddedServer


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Yield the base URL (http://host:port) while `app` is being served."""
    # No server Date header: a stand-in that wants one (the provider's clock) sends its own.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", date_header=False
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raises a failed bind
            raise RuntimeError("stand-in server exited before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        await task
