"""Poller: one poll cycle reads new SMS into the ledger and moves the cursor; delivery follows.

    fetch page -> route each SMS -> ledger (dedupe by documentId) + cursor, one transaction
               -> repeat while the cursor rules ask for more -> wake the channel workers

The scheduler calls `run_job` every poll interval. Failures never crash the process: transient
ones (5xx, timeouts, malformed pages, status 9999) back off exponentially with jitter; rejections
that a person must fix (bad credentials, blocked account) are said once and retried slowly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from smsbridge.backoff import Backoff
from smsbridge.errors import MalformedPageError, ProviderRejectedError, ProviderTransientError
from smsbridge.metrics import Metrics
from smsbridge.models import InboundSms
from smsbridge.optouts import OptChange, opt_change
from smsbridge.privacy import Phone
from smsbridge.provider.cursor import Stall, initial_since
from smsbridge.provider.paging import PageFetcher, walk_pages
from smsbridge.store.store import Store, database_reason

log = logging.getLogger(__name__)

MAX_PAGES_PER_CYCLE = 500  # a catch-up continues in the next cycle; the job must not run forever
RESUME_NOTICE_AFTER = 3600  # seconds behind at which we warn that old SMS may be gone


@dataclass
class CycleReport:
    pages: int = 0
    fetched: int = 0
    new: int = 0
    unrouted: int = 0
    invalid: int = 0
    since: int = 0


class Poller:
    def __init__(
        self,
        account: str,
        fetcher: PageFetcher,
        store: Store,
        on_new_work: Callable[[], Awaitable[None]],
        channel_for: Callable[[str | None], str | None],
        *,
        poll_interval: float,
        initial_lookback: int,
        rejected_retry: float = 300.0,
        clock: Callable[[], float] = time.time,
        may_poll: Callable[[], bool] = lambda: True,
        metrics: Metrics | None = None,
        reconcile_interval: float | None = None,
    ) -> None:
        self._account = account
        self._fetcher = fetcher
        self._store = store
        self._on_new_work = on_new_work  # delivery's kick: the poller never imports delivery
        self._channel_for = channel_for
        self._interval = poll_interval
        # With pushes on: while pushes arrive, polls only reconcile, this far apart. Until the
        # first push, and again after a poll finds an SMS no push brought, polls keep their
        # own pace: pushes that never come (an unregistered URL) then cost no speed.
        self._reconcile = reconcile_interval
        self._pushes_arrive = False
        self._told_pushes_missing = False
        self._lookback = initial_lookback
        self._rejected_retry = rejected_retry
        self._clock = clock
        self._may_poll = may_poll
        self._metrics = metrics or Metrics()
        self._label = self._metrics.account(account)  # metrics name accounts by label
        self._backoff = Backoff(base=poll_interval, cap=max(60.0, poll_interval))
        self._not_before = 0.0
        self._rejection: int | None = None  # provider status we last told the operator about
        self._unrouted_logged: set[str] = set()
        self._stalls_logged: set[int] = set()
        self.last_success: float | None = None
        self.last_error: str | None = None  # for /sms status (access-controlled), never /readyz
        self.last_cause: str | None = None  # a fixed word, safe on the public /readyz
        self._current: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between polls now: the reconciliation interval while pushes arrive."""
        if self._reconcile is not None and self._pushes_arrive:
            return max(self._reconcile, self._interval)
        return self._interval

    def push_arrived(self) -> None:
        """The gateway pushed an SMS (to this replica or another)."""
        if self._reconcile is not None and not self._pushes_arrive:
            log.info(
                "pushes arrive: polling every %.0fs only to catch what a push missed",
                max(self._reconcile, self._interval),
            )
        self._pushes_arrive = True

    def _pushes_missed(self, count: int) -> None:
        """A poll found `count` SMS that no push brought."""
        if self._pushes_arrive or not self._told_pushes_missing:
            log.warning(
                "%d SMS reached us by polling before any push of them: pushes are missing or "
                "late (is the push URL registered, and reachable from the gateway?). Polling "
                "every %ss until pushes arrive again.",
                count,
                self._interval,
                extra={"cause": "pushes_missing", "account": self._account},
            )
            self._told_pushes_missing = True
        self._pushes_arrive = False

    @property
    def next_attempt_at(self) -> float:
        """When the scheduled job polls again at the earliest (after a backoff), on its clock."""
        return self._not_before

    async def halt(self, grace: float = 5.0) -> None:
        """Let a cycle in flight finish (briefly), else cancel it: its work is transactional."""
        task = self._current
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    async def not_ready(self) -> str | None:
        """None when some replica polled this account within the last three intervals; else
        why not, as one of a fixed set of words (the answer is public)."""
        try:
            last = await self._store.cursors.last_poll(self._account)
        except Exception:
            return "database_unavailable"
        slowest = max(self._interval, self._reconcile or 0.0)  # any replica's pace
        if last is not None and self._clock() - last <= 3 * slowest:
            return None
        return self.last_cause or ("no_recent_poll" if last else "no_poll_yet")

    async def run_job(self) -> None:
        """The scheduled job: one cycle, unless a backoff says not yet. Never raises."""
        now = self._clock()
        if now < self._not_before or not self._may_poll():
            return
        # Pushes arrive: poll only when the reconciliation interval is (about) up. The work a
        # poll would wake (replays, replies another replica recorded) is still woken.
        if (
            self.interval > self._interval
            and self.last_success is not None
            and now < self.last_success + self.interval - self._interval / 2
        ):
            await self._on_new_work()
            return
        self._current = asyncio.current_task()
        try:
            report = await self.poll_once()
        except ProviderRejectedError as error:
            self._failed("rejected", "provider_rejected", str(error))
            self._not_before = now + self._rejected_retry
            if self._rejection != error.status:  # say it once, not every retry
                self._rejection = error.status
                log.error("%s Retrying every %.0fs until fixed.", error, self._rejected_retry)
            return
        except ProviderTransientError as error:
            malformed = isinstance(error, MalformedPageError)
            self._back_off(
                now,
                "malformed" if malformed else "transient",
                "provider_malformed" if malformed else "provider_unavailable",
                str(error),
            )
            return
        except asyncio.CancelledError:
            raise
        except (DBAPIError, OSError) as error:  # the database went away: retry, say why
            detail = f"the database is unavailable ({database_reason(error)})"
            self._back_off(now, "database", "database_unavailable", detail)
            return
        except Exception as error:  # a bug: keep the process up, retry slowly, say it loudly
            self._failed("unexpected", "unexpected_error", f"unexpected error: {error}")
            self._not_before = now + self._backoff.next_delay()
            log.exception("poll failed unexpectedly")
            return
        if self._rejection is not None or self._backoff.failures:
            log.info("SMS provider polls work again")
        self._rejection = None
        self._backoff.reset()
        self.last_error = self.last_cause = None
        self.last_success = self._clock()
        await self._store.cursors.record_poll(self._account)
        self._metrics.polls.labels(self._label).inc()
        log.info(
            "poll: %d new SMS (%d unrouted, %d invalid) in %d page(s)",
            report.new,
            report.unrouted,
            report.invalid,
            report.pages,
            extra={
                "account": self._account,
                "pages": report.pages,
                "fetched": report.fetched,
                "new": report.new,
                "unrouted": report.unrouted,
                "invalid": report.invalid,
                "cursor": report.since,
            },
        )

    def _back_off(self, now: float, cause: str, public_cause: str, detail: str) -> None:
        """A failure that usually passes: retry after a growing, jittered delay."""
        self._failed(cause, public_cause, detail)
        delay = self._backoff.next_delay()
        self._not_before = now + delay
        log.warning(
            "poll failed: %s; next try in %.1fs",
            detail,
            delay,
            extra={"cause": cause, "retry_in": round(delay, 1)},
        )

    def _failed(self, metric_cause: str, public_cause: str, detail: str) -> None:
        self._metrics.poll_errors.labels(self._label, metric_cause).inc()
        self.last_cause = public_cause
        self.last_error = detail

    async def poll_once(self) -> CycleReport:
        """Read every page the cursor rules ask for into the ledger, then wake delivery."""
        since = await self._store.cursors.get(self._account)
        if since is None:
            since = initial_since(int(self._clock()), self._lookback)
            log.info("first start: reading SMS from the last %d seconds", self._lookback)
        elif self._clock() - since > RESUME_NOTICE_AFTER and self.last_success is None:
            log.warning(
                "resuming %.1f hours behind; the provider keeps limited history, so SMS older "
                "than its retention may no longer be available",
                (self._clock() - since) / 3600,
            )
        report = CycleReport(since=since)
        async for page, step in walk_pages(
            self._fetcher, since, clock=self._clock, max_pages=MAX_PAGES_PER_CYCLE
        ):
            report.pages += 1
            channels = [self._channel_for(sms.recipient) for sms in page.messages]
            fresh, fresh_invalid = await self._store.ledger.ingest(
                self._account, page.messages, channels, step.next_since, page.invalid
            )
            report.fetched += page.size
            report.new += len(fresh)
            if self._store.ledger.match_twins and fresh:  # pushes on: polling found these
                self._metrics.polled_only.labels(self._label).inc(len(fresh))
                for sms in fresh:
                    log.info(
                        "SMS %s found by polling; no push of it came",
                        sms.document_id,
                        extra={"path": "poll"},
                    )
                self._pushes_missed(len(fresh))
            report.invalid += len(fresh_invalid)
            routed = {sms.document_id: ch for sms, ch in zip(page.messages, channels, strict=True)}
            for sms in fresh:
                if routed[sms.document_id] is None:
                    report.unrouted += 1
                    self._metrics.unrouted.labels(self._label).inc()
                    self._log_unrouted(sms.recipient)
                if step.latest is not None and sms.timestamp > step.latest:
                    log.warning(
                        "SMS %s is stamped %d, %d seconds ahead of the provider's present; it "
                        "is posted, but the cursor does not follow it, so later SMS are not "
                        "skipped. Check the gateway's clock.",
                        sms.document_id,
                        sms.timestamp,
                        sms.timestamp - step.latest,
                        extra={"cause": "future_timestamp"},
                    )
            for sms in fresh:
                await self._note_opt_change(sms)
            for bad in fresh_invalid:
                self._metrics.invalid.labels(self._label).inc()
                log.error(
                    "the SMS provider sent a record that is not a readable SMS (%s); it is kept "
                    "in the ledger as invalid (id %s) and the other SMS go on",
                    bad.reason,
                    bad.key,
                    extra={"cause": "invalid_record"},
                )
            self._log_stall(step.stall, step.stalled_second)
            report.since = step.next_since
        await self._on_new_work()  # also picks up replayed or left-over SMS
        return report

    async def _note_opt_change(self, sms: InboundSms) -> None:
        """STOP opts the sender out of SMS from this line; START (after a STOP) back in."""
        change = opt_change(sms.text, opted_out=True)  # what it would change, if anything
        if change is None:
            return
        optouts = self._store.optouts
        if change is OptChange.IN and not await optouts.is_out(
            self._account, sms.recipient, sms.sender
        ):
            return  # "yes" from someone who never opted out is an answer
        await optouts.set(self._account, sms.recipient, sms.sender, out=change is OptChange.OUT)
        self._metrics.opt_changes.labels(self._label, change.value).inc()
        log.info(
            "a number %s SMS from line %s",
            "opted out of" if change is OptChange.OUT else "opted back in to",
            Phone(sms.recipient),
            extra={"account": self._account, "cause": "opt_out"},
        )

    def _log_unrouted(self, recipient: str | None) -> None:
        key = recipient or ""
        if key in self._unrouted_logged:
            return
        self._unrouted_logged.add(key)
        if recipient is None:
            log.error(
                "SMS that name no line match no route, and there is no default route; they "
                'are kept in the ledger as unrouted. Add "*" to SMSBRIDGE_ROUTES.'
            )
            return
        # The line is masked like any number: the operator knows their lines by their ends.
        log.error(
            "SMS to your line %s match no route and there is no default route; they are kept "
            'in the ledger as unrouted. Add that line (or "*") to SMSBRIDGE_ROUTES.',
            Phone(recipient),
        )

    def _log_stall(self, stall: Stall, second: int | None) -> None:
        if stall is Stall.NONE or second is None or second in self._stalls_logged:
            return
        if len(self._stalls_logged) > 1000:  # only repeats of recent seconds matter
            self._stalls_logged.clear()
        self._stalls_logged.add(second)
        if stall is Stall.OVERFULL_SECOND:
            log.error(
                "a whole page of SMS share the second %d; the provider pages by whole seconds, "
                "so SMS of that second beyond one page cannot be fetched. Moving on.",
                second,
            )
        else:
            log.error(
                "the SMS provider returned a full page older than our cursor (newest %d); "
                "ignoring it and trying again next cycle",
                second,
            )
