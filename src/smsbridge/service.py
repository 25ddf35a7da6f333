"""The running process: a bridge (see `bridge.py`), its scheduler, web server and signals.

`Service.run` is `smsbridge run`: one asyncio loop serves HTTP (uvicorn) and runs the poll job
(APScheduler). SIGTERM or SIGINT: stop polling, let each channel finish the post in flight,
close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from smsbridge.bridge import Bridge
from smsbridge.config import Settings
from smsbridge.embedded_server import public_server
from smsbridge.errors import SmsBridgeError
from smsbridge.pipeline.delivery import CatchUpProgress
from smsbridge.slash.app import EVENTS_PATH, build_bolt_app, connect_socket_mode, http_endpoint
from smsbridge.stopping import StopSignal
from smsbridge.web import build_web_app

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2


@dataclass
class Service:
    settings: Settings
    host: str = "0.0.0.0"
    handle_signals: bool = True
    stop: StopSignal = field(default_factory=StopSignal)
    fatal: SmsBridgeError | None = None
    bridge: Bridge | None = None  # while running
    progress: CatchUpProgress | None = None  # a progress bar for catch-ups, on a terminal

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        try:
            bridge = Bridge.build(self.settings, self.stop, self._on_fatal, self.progress)
        except SmsBridgeError as error:
            log.error("%s", error)
            return EXIT_CONFIG
        self.bridge = bridge
        try:
            await bridge.start()
            await self._serve(bridge)
        except SmsBridgeError as error:
            self.fatal = error
        finally:
            await bridge.aclose()
        if self.fatal is not None:
            log.error("%s", self.fatal)
            return EXIT_CONFIG
        return EXIT_OK

    def _on_fatal(self, error: Exception) -> None:
        if isinstance(error, SmsBridgeError) and self.fatal is None:
            self.fatal = error
        self.stop.set()

    async def _serve(self, bridge: Bridge) -> None:
        slack_settings = self.settings.slack
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        scheduler = AsyncIOScheduler(event_loop=loop)
        for lane in bridge.lanes:  # one poll job per provider account
            scheduler.add_job(
                lane.poller.run_job,
                "interval",
                seconds=self.settings.poll_interval,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
                id=f"poll:{lane.account.name}",
            )
        scheduler.add_job(
            bridge.prune,
            "interval",
            hours=1,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(minutes=1),
            id="retention",
        )
        bolt = build_bolt_app(
            bridge.slack, slack_settings.signing_secret.get_secret_value(), bridge.commands
        )
        web = build_web_app(
            bridge.not_ready,
            bridge.metrics.exposition,
            (
                EVENTS_PATH,
                http_endpoint(
                    bolt,
                    slack_settings.signing_secret.get_secret_value(),
                    lambda cause: bridge.metrics.http_rejected.labels(cause).inc(),
                ),
            ),
        )
        socket_mode = None
        if slack_settings.app_token is not None:
            # Behind a firewall: Slack's requests come over a WebSocket we open, not to $PORT.
            socket_mode = await connect_socket_mode(
                bolt, slack_settings.app_token.get_secret_value()
            )
        server = public_server(web, self.host, self.settings.port)
        server_task = asyncio.create_task(server.serve(), name="http")
        keepers = [
            asyncio.create_task(lane.keeper.run(), name=f"lease:{lane.account.name}")
            for lane in bridge.lanes
        ]
        scheduler.start()
        log.info(
            "smsbridge running: %d provider account(s), polling every %ss, HTTP on port %d",
            len(bridge.lanes),
            self.settings.poll_interval,
            self.settings.port,
        )
        stop_task = asyncio.create_task(self.stop.wait())
        await asyncio.wait({stop_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: finishing the posts in flight")
        self.stop.set()
        scheduler.shutdown(wait=False)
        for lane in bridge.lanes:
            await lane.poller.halt()
        for lane in bridge.lanes:
            await lane.delivery.drain()
        await asyncio.gather(*keepers)  # gives the leases up, so another replica takes over
        if socket_mode is not None:
            await socket_mode.close_async()  # type: ignore[no-untyped-call]
        server.should_exit = True
        with contextlib.suppress(Exception):
            await server_task
        if server_task.done() and not server_task.cancelled() and server_task.exception():
            log.error("HTTP server failed: %s", server_task.exception())
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        self.stop.set()
