"""The composition root: settings -> store -> clients -> poller, delivery, scheduler, web server.

`Service.run` is `smsbridge run`: one asyncio loop serves HTTP (uvicorn) and runs the poll job
(APScheduler). SIGTERM or SIGINT: stop polling, let each channel finish the post in flight,
close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.config import Account, Settings
from smsbridge.delivery import CatchUpProgress, Delivery
from smsbridge.embedded_server import public_server
from smsbridge.errors import SlackAuthError, SmsBridgeError
from smsbridge.lease import LeaseKeeper, replica_id
from smsbridge.metrics import Metrics
from smsbridge.provider.client import ProviderClient
from smsbridge.relay import Poller
from smsbridge.slack.answers import Status, start_of_utc_day
from smsbridge.slack.app import EVENTS_PATH, build_bolt_app, connect_socket_mode, http_endpoint
from smsbridge.slack.commands import SmsCommand
from smsbridge.slack.poster import SlackPoster, classify, make_client
from smsbridge.stopping import StopSignal
from smsbridge.store.store import Store
from smsbridge.web import build_web_app

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2


@dataclass
class Lane:
    """One provider account's path to Slack: its poller, delivery workers and lease."""

    account: Account
    provider: ProviderClient
    delivery: Delivery
    poller: Poller
    keeper: LeaseKeeper

    async def status(self, store: Store) -> Status:
        name = self.account.name
        return Status(
            account=name,
            last_success=await store.last_poll(name),
            last_error=self.poller.last_error,
            cursor=await store.cursor(name),
            bridged_today=await store.posted_since(name, start_of_utc_day(time.time())),
            counts=await store.counts(name),
            slack_error=self.delivery.last_error,
            polled_by=await store.lease_holder(name),
        )


@dataclass
class Bridge:
    """The wired parts of one running bridge, built once from the settings: what all accounts
    share (store, Slack client and its per-channel pacing, metrics) and one lane per account."""

    settings: Settings
    store: Store
    slack: AsyncWebClient
    metrics: Metrics
    lanes: list[Lane]
    commands: SmsCommand = field(init=False)

    def __post_init__(self) -> None:
        self.commands = SmsCommand(
            self.settings,
            [(lane.account, lane.provider) for lane in self.lanes],
            self.store,
            self.slack,
            self.status,
        )

    async def status(self) -> list[Status]:
        """What `/sms status` reports, per account."""
        return [await lane.status(self.store) for lane in self.lanes]

    @classmethod
    def build(
        cls,
        settings: Settings,
        stop: StopSignal,
        on_fatal: Callable[[Exception], None],
        progress: CatchUpProgress | None = None,
    ) -> Bridge:
        store = Store.open(settings.database_url)
        slack = make_client(
            settings.slack.bot_token.get_secret_value(),
            settings.slack.api_url,
            settings.slack.timeout,
        )
        metrics = Metrics()
        # One poster for all accounts: two accounts routed to one channel share its pace.
        poster = SlackPoster(
            slack,
            sleep=stop.sleep,
            on_rate_limited=lambda channel: metrics.slack_429.labels(channel).inc(),
            post_interval=settings.slack.post_interval,
        )
        holder = replica_id()
        lanes = [
            _lane(settings, account, store, poster, metrics, holder, stop, on_fatal, progress)
            for account in settings.provider_accounts
        ]
        return cls(settings, store, slack, metrics, lanes)

    async def start(self) -> None:
        """Schema up to date, the database ours to write, Slack accepting our token, and a first
        try at each polling lease (a holder then recovers and posts what is waiting)."""
        before, after = await self.store.upgrade()
        if before != after:
            log.info("database schema upgraded from version %d to %d", before, after)
        self.store.lock_for_single_writer()
        await _check_slack_auth(self.slack)
        for lane in self.lanes:
            await lane.keeper.renew()

    async def not_ready(self) -> list[str]:
        """Why some account was not polled (by any replica) within the last three intervals:
        fixed words only, since /readyz is public. Empty when ready."""
        causes = [await lane.poller.not_ready() for lane in self.lanes]
        return sorted({cause for cause in causes if cause})

    async def prune(self) -> None:
        """Retention: keep the database from growing without bound (lease holders only)."""
        days = self.settings.retention_days
        for lane in self.lanes:
            if not lane.keeper.held:
                continue
            try:
                removed, idle = await self.store.prune(
                    lane.account.name, time.time() - days * 86400
                )
            except Exception as error:  # retried at the next run of the job
                log.warning("retention failed: %s", error, extra={"cause": "database"})
                continue
            if removed or idle:
                log.info(
                    "retention: forgot %d SMS and %d idle threads older than %d days",
                    removed,
                    idle,
                    days,
                    extra={
                        "account": lane.account.name,
                        "pruned_sms": removed,
                        "pruned_threads": idle,
                    },
                )

    async def aclose(self) -> None:
        for lane in self.lanes:
            await lane.provider.aclose()
        await self.store.close()


def _lane(
    settings: Settings,
    account: Account,
    store: Store,
    poster: SlackPoster,
    metrics: Metrics,
    holder: str,
    stop: StopSignal,
    on_fatal: Callable[[Exception], None],
    progress: CatchUpProgress | None,
) -> Lane:
    provider = ProviderClient(account.url, account.name, account.password, timeout=account.timeout)
    keeper: LeaseKeeper  # made below; the gates read it only once the bridge runs
    delivery = Delivery(
        store,
        poster,
        account.name,
        stop,
        thread_idle_hours=settings.thread_idle_hours,
        on_fatal=on_fatal,
        alerts=account.alerts,
        holder=holder,
        # SQLite: start() takes the single-writer lock, so no other process can be posting.
        in_doubt_grace=0.0 if store.dialect == "sqlite" else settings.slack.timeout + 5,
        may_deliver=lambda: keeper.held,
        metrics=metrics,
        progress=progress,
    )
    poller = Poller(
        account.name,
        provider,
        store,
        delivery,
        account.channel_for,
        poll_interval=settings.poll_interval,
        initial_lookback=settings.initial_lookback,
        rejected_retry=settings.rejected_retry,
        may_poll=lambda: keeper.held,
        metrics=metrics,
    )
    keeper = LeaseKeeper(store, account.name, holder, settings.poll_interval, stop, delivery.kick)
    return Lane(account, provider, delivery, poller, keeper)


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


async def _check_slack_auth(client: AsyncWebClient) -> None:
    """Fail fast on a bad token; a Slack outage at start is only a warning."""
    try:
        await client.auth_test()
    except SlackApiError as error:
        mapped = classify(error, "-")
        if isinstance(mapped, SlackAuthError):
            raise mapped from None
        log.warning("Slack auth.test failed (%s); continuing, posts will retry", mapped)
    except (aiohttp.ClientError, TimeoutError) as error:  # posts retry later
        log.warning("cannot reach Slack at start (%s); continuing, posts will retry", error)
    except (AttributeError, TypeError, ValueError) as error:  # an answer that is no JSON object
        log.warning(
            "Slack's auth.test answer could not be read (%s); continuing, posts will retry",
            type(error).__name__,
        )
