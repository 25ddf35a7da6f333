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
from smsbridge.embedded_server import EmbeddedServer, public_server
from smsbridge.errors import SmsBridgeError
from smsbridge.pipeline.delivery import CatchUpProgress
from smsbridge.provider.push_endpoint import (
    PUSH_PATH,
    STATUS_PATH,
    push_endpoint,
    status_handler,
)
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
        """Run until stopped; returns the process exit code.

        Each part registers its own clean-up on one exit stack as it starts, so shutdown runs
        in the reverse order of start-up, and a failure half-way still undoes what had started.
        """
        try:
            async with contextlib.AsyncExitStack() as stack:
                bridge = self.bridge = Bridge.build(
                    self.settings, self.stop, self._on_fatal, self.progress
                )
                stack.push_async_callback(bridge.aclose)
                await bridge.start()
                await self._serve(bridge, stack)
        except SmsBridgeError as error:
            self.fatal = self.fatal or error
        if self.fatal is not None:
            log.error("%s", self.fatal)
            return EXIT_CONFIG
        return EXIT_OK

    def _on_fatal(self, error: Exception) -> None:
        if isinstance(error, SmsBridgeError) and self.fatal is None:
            self.fatal = error
        self.stop.set()

    async def _serve(self, bridge: Bridge, stack: contextlib.AsyncExitStack) -> None:
        """Start every part, wait for the stop signal (or the web server's end), return."""
        stack.callback(log.info, "stopped")
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
                stack.callback(loop.remove_signal_handler, sig)
        slack_settings = self.settings.slack
        answering: set[asyncio.Task[None]] = set()  # /sms answers still running
        bolt = build_bolt_app(
            bridge.slack,
            slack_settings.signing_secret.get_secret_value(),
            bridge.commands,
            bridge.replies,
            answering,
        )
        stack.push_async_callback(_settle, answering)
        if slack_settings.app_token is not None:
            # Behind a firewall: Slack's requests come over a WebSocket we open, not to $PORT.
            socket_mode = await connect_socket_mode(
                bolt, slack_settings.app_token.get_secret_value()
            )
            stack.push_async_callback(socket_mode.close_async)

        def rejected(cause: str) -> None:
            bridge.metrics.http_rejected.labels(cause).inc()

        pushes = []
        if self.settings.push.token is not None:  # without the secret, no push URL exists
            token = self.settings.push.token.get_secret_value()
            statuses = push_endpoint(token, status_handler(bridge.status_pushed), rejected)
            pushes.append((STATUS_PATH, statuses, ["GET", "POST"]))
            inbound = push_endpoint(token, bridge.sms_pushed, bridge.push_rejected)
            pushes.append((PUSH_PATH, inbound, ["GET", "POST"]))
        web = build_web_app(
            bridge.not_ready,
            bridge.metrics.exposition,
            (
                EVENTS_PATH,
                http_endpoint(
                    bolt,
                    slack_settings.signing_secret.get_secret_value(),
                    rejected,
                ),
            ),
            pushes,
            metrics_token=(
                self.settings.metrics_token.get_secret_value()
                if self.settings.metrics_token is not None
                else None
            ),
        )
        server = public_server(web, self.host, self.settings.port)
        server_task = asyncio.create_task(server.serve(), name="http")
        stack.push_async_callback(_stop_server, server, server_task)
        if bridge.store.wakeups.enabled:  # PostgreSQL: other replicas' pushes and replies
            listening = bridge.store.wakeups.listen(bridge.woken, bridge.wake_all)
            listener = asyncio.create_task(listening, name="wake")
            stack.push_async_callback(_cancel, listener)
        keepers = [
            asyncio.create_task(lane.keeper.run(), name=f"lease:{lane.account.name}")
            for lane in bridge.lanes
        ]
        # once stopped, each keeper gives its lease up, so another replica takes over at once
        stack.push_async_callback(asyncio.wait, keepers)
        stack.push_async_callback(bridge.finish_in_flight)
        scheduler = self._schedule(bridge)
        scheduler.start()
        stack.callback(scheduler.shutdown, wait=False)
        stack.callback(self.stop.set)  # the first step of every shutdown: nothing new starts
        if self.settings.log_personal_data:
            log.warning(
                "SMSBRIDGE_LOG_PERSONAL_DATA is on: this log shows full phone numbers. Turn it "
                "off once done debugging; logs travel further than the database.",
                extra={"cause": "personal_data_in_logs"},
            )
        log.info(
            "smsbridge running: %d provider account(s), polling every %ss, HTTP on port %d",
            len(bridge.lanes),
            self.settings.poll_interval,
            self.settings.port,
        )
        stop_task = asyncio.create_task(self.stop.wait())
        stack.callback(stop_task.cancel)
        await asyncio.wait({stop_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: finishing the posts in flight")

    def _schedule(self, bridge: Bridge) -> AsyncIOScheduler:
        """One poll job per provider account, and the hourly retention job."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        for lane in bridge.lanes:
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
        return scheduler

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        self.stop.set()


async def _settle(tasks: set[asyncio.Task[None]], grace: float = 10.0) -> None:
    """Let answers in flight finish (briefly), then cancel what is left."""
    if tasks:
        _, late = await asyncio.wait(set(tasks), timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_server(server: EmbeddedServer, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception):
        await task
    if task.done() and not task.cancelled() and task.exception():
        log.error("HTTP server failed: %s", task.exception())
