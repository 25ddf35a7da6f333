"""uvicorn inside an event loop that someone else owns, and the limits of the public port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds from connecting (or from the last answer) to a whole request head
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open
MAX_CONNECTIONS = 256  # beyond this uvicorn answers 503 at once instead of queueing work


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM/SIGINT to the program embedding it.

    uvicorn would capture them and re-raise them after its shutdown, turning a clean stop of
    `smsbridge run` into a death by signal.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HeadTimeoutProtocol(H11Protocol):
    """h11 with a deadline for each request head.

    uvicorn times out idle keep-alive connections, but not a connection that sends nothing,
    or half a request head, after connecting: those would stay open for ever and eat file
    descriptors. The body of Slack's requests has its own deadline in the endpoint.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        self.loop.call_later(HEADER_TIMEOUT, self._drop_if_stalled, self.cycle)

    def _drop_if_stalled(self, cycle: object) -> None:
        # Still the same request cycle as when armed: no new request head arrived in time.
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()


def public_server(app: ASGIApp, host: str, port: int) -> EmbeddedServer:
    """The server for `$PORT`: bounded connections, timeouts, logs through our formatter."""
    raise_descriptor_limit()
    return EmbeddedServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            http=HeadTimeoutProtocol,
            timeout_keep_alive=int(KEEP_ALIVE),
            limit_concurrency=MAX_CONNECTIONS,
            log_config=None,  # uvicorn's records go to our handler (console or JSON)
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="off",
        )
    )


def raise_descriptor_limit() -> None:
    """Use the hard limit on open files, where the soft one is lower (allowed without root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
