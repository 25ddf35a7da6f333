"""uvicorn inside an event loop that someone else owns."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM/SIGINT to the program embedding it.

    uvicorn would capture them and re-raise them after its shutdown, turning a clean stop of
    `smsbridge run` into a death by signal.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
