"""The wiring of one bridge: settings -> store, Slack client, metrics -> one lane per account.

A lane is one provider account's path to Slack (its poller, delivery workers and lease). The
bridge also answers for all lanes: status, readiness, retention. It runs nothing by itself;
`service.py` runs it as a process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.config import Account, Settings
from smsbridge.errors import SlackAuthError
from smsbridge.metrics import Metrics
from smsbridge.pipeline.delivery import CatchUpProgress, Delivery
from smsbridge.pipeline.intake import PushIntake
from smsbridge.pipeline.lease import LeaseKeeper, replica_id
from smsbridge.pipeline.poller import Poller
from smsbridge.pipeline.sender import QUEUED_REACTION, Sender, not_sent
from smsbridge.provider.client import ProviderClient
from smsbridge.provider.push import read_mo_push
from smsbridge.provider.statuses import is_final
from smsbridge.slack.errors import classify
from smsbridge.slack.poster import SlackPoster, close_client, make_client
from smsbridge.slack.render import bridge_message
from smsbridge.slash.answers import Status, start_of_utc_day
from smsbridge.slash.command import SmsCommand
from smsbridge.slash.replies import ReplyIntake
from smsbridge.soon import Soon
from smsbridge.stopping import StopSignal
from smsbridge.store.store import Store
from smsbridge.store.wakeups import OUTBOUND, PUSHED

log = logging.getLogger(__name__)


@dataclass
class Lane:
    """One provider account: its poller, delivery workers, sender (Slack -> SMS) and lease."""

    account: Account
    provider: ProviderClient
    delivery: Delivery
    poller: Poller
    keeper: LeaseKeeper
    sender: Sender
    after_push: Soon  # what follows a push, off the push's answer: wake the other replicas

    async def status(self, store: Store, pushes_rejected: int = 0) -> Status:
        name = self.account.name
        return Status(
            account=name,
            last_success=await store.cursors.last_poll(name),
            last_error=self.poller.last_error,
            cursor=await store.cursors.get(name),
            bridged_today=await store.ledger.posted_since(name, start_of_utc_day(time.time())),
            counts=await store.ledger.counts(name),
            slack_error=self.delivery.last_error,
            polled_by=await store.leases.holder(name),
            outbound=await store.outbox.counts(name),
            arrivals=(
                await store.ledger.arrivals(name, start_of_utc_day(time.time()))
                if store.ledger.match_twins
                else None
            ),
            pushes_rejected=pushes_rejected,
            poll_every=self.poller.interval if store.ledger.match_twins else None,
        )


@dataclass
class Bridge:
    """The wired parts of one running bridge, built once from the settings: what all accounts
    share (store, Slack client and its per-channel pacing, metrics) and one lane per account."""

    settings: Settings
    store: Store
    slack: AsyncWebClient
    metrics: Metrics
    poster: SlackPoster
    lanes: list[Lane]
    commands: SmsCommand = field(init=False)
    replies: ReplyIntake = field(init=False)
    pushes_rejected: int = 0  # by this replica since it started, for /sms status
    intake: PushIntake = field(init=False)

    def __post_init__(self) -> None:
        self.intake = PushIntake(self.store.ledger)
        senders = {lane.account.name: lane.sender for lane in self.lanes}

        async def queued(account: str, channel: str, ts: str) -> None:
            await self.poster.react(channel, ts, QUEUED_REACTION)
            await senders[account].kick()  # this replica, if it holds the lease
            await self.store.wakeups.notify(OUTBOUND, account)  # else the one that does

        async def refused(account: str, channel: str, ts: str, thread_ts: str, reason: str) -> None:
            self.metrics.outbound.labels(self.metrics.account(account), "refused").inc()
            await not_sent(self.poster, channel, ts, thread_ts, reason)

        self.replies = ReplyIntake(
            self.store,
            self.slack,
            {lane.account.name: lane.account for lane in self.lanes},
            note_prefix=self.settings.note_prefix,
            max_parts=self.settings.max_sms_parts,
            per_person=self.settings.send_limit_per_person,
            per_account=self.settings.send_limit_per_account,
            allowed=self.settings.send_allowed,
            on_queued=queued,
            on_refused=refused,
            post_parent=self._post_parent,
            on_changed=self._note_in_thread,
        )
        self.commands = SmsCommand(
            self.settings,
            [(lane.account, lane.provider) for lane in self.lanes],
            self.store,
            self.slack,
            self.status,
            self.replies,
        )

    async def sms_pushed(self, fields: dict[str, str]) -> str:
        """An inbound SMS the gateway pushed: in the ledger (durably) before we answer, then
        posted at once. Raises ValueError for a push that is not an SMS we can take."""
        sms = read_mo_push(fields, time.time(), self.settings.push.parameters)
        lane = self._lane_for(sms.recipient)
        channel = lane.account.channel_for(sms.recipient)
        new = await self.intake.store(lane.account.name, sms, channel)
        self.metrics.pushes.labels(lane.account.label, "new" if new else "known").inc()
        if new:
            log.info("SMS %s pushed by the gateway", sms.document_id, extra={"path": "push"})
            lane.poller.push_arrived()
            if channel is not None:
                lane.delivery.wake(channel)  # this replica, if it holds the lease
            if self.store.wakeups.enabled:  # on SQLite there are no others
                lane.after_push()  # the others, through the database
        return "ok"

    async def woken(self, kind: str, account: str) -> None:
        """Another replica (or this one) stored work for `account`: do it now if we hold its
        lease (the kicks do nothing otherwise)."""
        lane = next((lane for lane in self.lanes if lane.account.name == account), None)
        if lane is None:
            return
        if kind == PUSHED:
            lane.poller.push_arrived()
            await lane.delivery.kick()
        else:
            await lane.sender.kick()

    async def wake_all(self) -> None:
        """Look for work in every account (after wake-ups may have been missed)."""
        for lane in self.lanes:
            await lane.delivery.kick()
            await lane.sender.kick()

    def push_rejected(self, cause: str) -> None:
        """A push we answered with an error: counted, since it may mean lost SMS upstream."""
        self.metrics.http_rejected.labels(cause).inc()
        self.metrics.pushes_rejected.labels(cause).inc()
        self.pushes_rejected += 1

    def _lane_for(self, line: str | None) -> Lane:
        """The account an SMS to `line` belongs to: the one routing that line, else the one
        with a default route, else the first."""
        for lane in self.lanes:
            if line is not None and line in lane.account.routes:
                return lane
        return next((lane for lane in self.lanes if "*" in lane.account.routes), self.lanes[0])

    async def status_pushed(self, provider_id: str, status: int) -> bool:
        """A delivery status the gateway pushed: True when it is about an SMS sent from Slack."""
        sms = await self.store.outbox.by_provider_id(provider_id)
        lane = next((lane for lane in self.lanes if sms and lane.account.name == sms.account), None)
        if sms is None or lane is None:
            return False
        if is_final(status):
            await lane.sender.final_status(sms, status)
        return True

    async def _note_in_thread(self, channel: str, thread_ts: str, text: str) -> None:
        """A word from the bridge in a thread (feedback: a failure is only logged)."""
        await self.poster.note(channel, bridge_message(text, "sms_outbound_status"), thread_ts)

    async def _post_parent(self, channel: str, text: str) -> str:
        """The parent of a conversation someone starts with `/sms send`."""
        return await self.poster.post(channel, bridge_message(text, "sms_outbound"), None)

    async def status(self) -> list[Status]:
        """What `/sms status` reports, per account."""
        return [await lane.status(self.store, self.pushes_rejected) for lane in self.lanes]

    @classmethod
    def build(
        cls,
        settings: Settings,
        stop: StopSignal,
        on_fatal: Callable[[Exception], None],
        progress: CatchUpProgress | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Bridge:
        """`clock`: the pollers' clock (backoff, readiness, the present); tests pass their own."""
        store = Store.open(settings.database_url)
        store.ledger.match_twins = settings.push.token is not None
        store.ledger.drop_posted_text = settings.drop_posted_text
        store.outbox.drop_sent_text = settings.drop_posted_text
        slack = make_client(
            settings.slack.bot_token.get_secret_value(),
            settings.slack.api_url,
            settings.slack.timeout,
        )
        metrics = Metrics({a.name: a.label for a in settings.provider_accounts})
        # One poster for all accounts: two accounts routed to one channel share its pace.
        poster = SlackPoster(
            slack,
            sleep=stop.sleep,
            on_rate_limited=lambda channel: metrics.slack_429.labels(channel).inc(),
            post_interval=settings.slack.post_interval,
            post_burst=settings.slack.post_burst,
        )
        holder = replica_id()
        lanes = [
            _lane(
                settings, account, store, poster, metrics, holder, stop, on_fatal, progress, clock
            )
            for account in settings.provider_accounts
        ]
        return cls(settings, store, slack, metrics, poster, lanes)

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
            before = time.time() - days * 86400
            try:
                removed, idle = await self.store.ledger.prune(lane.account.name, before)
                sent = await self.store.outbox.prune(lane.account.name, before)
            except Exception as error:  # retried at the next run of the job
                log.warning("retention failed: %s", error, extra={"cause": "database"})
                continue
            if removed or idle or sent:
                log.info(
                    "retention: forgot %d SMS received, %d SMS sent and %d idle threads older "
                    "than %d days",
                    removed,
                    sent,
                    idle,
                    days,
                    extra={
                        "account": lane.account.label,
                        "pruned_sms": removed,
                        "pruned_sent": sent,
                        "pruned_threads": idle,
                    },
                )

    async def finish_in_flight(self) -> None:
        """After the stop signal: let each poll cycle and each post in flight finish."""
        for lane in self.lanes:
            await lane.poller.halt()
        for lane in self.lanes:
            await lane.after_push.settled()
            await lane.delivery.drain()
            await lane.sender.idle()

    async def aclose(self) -> None:
        for lane in self.lanes:
            await lane.provider.aclose()
        await close_client(self.slack)
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
    clock: Callable[[], float],
) -> Lane:
    provider = ProviderClient.for_account(account.provider)
    keeper = LeaseKeeper(store, account.name, holder, settings.poll_interval, stop)
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
        may_deliver=keeper.holds,
        metrics=metrics,
        progress=progress,
        away_after=max(60.0, 3 * settings.poll_interval),
    )
    sender = Sender(
        store,
        provider,
        poster,
        account.name,
        stop,
        holder=holder,
        may_send=keeper.holds,
        metrics=metrics,
        status_query=account.provider.status_query,
        clock=clock,
    )

    async def wake() -> None:
        # After every poll: SMS to post, and SMS people wrote (perhaps recorded by another
        # replica, which cannot wake this one's sender directly).
        await delivery.kick()
        await sender.kick()

    poller = Poller(
        account.name,
        provider,
        store,
        wake,
        account.channel_for,
        poll_interval=settings.poll_interval,
        initial_lookback=settings.initial_lookback,
        rejected_retry=settings.rejected_retry,
        may_poll=keeper.holds,
        metrics=metrics,
        clock=clock,
        reconcile_interval=(
            settings.push.reconcile_interval if settings.push.token is not None else None
        ),
    )
    keeper.when_gained(wake)

    async def after_push() -> None:
        await store.wakeups.notify(PUSHED, account.name)  # the lease may be another's

    return Lane(account, provider, delivery, poller, keeper, sender, Soon(after_push, "after push"))


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
