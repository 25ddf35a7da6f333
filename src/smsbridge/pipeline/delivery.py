"""Delivery: post SMS waiting in the ledger, one worker per Slack channel.

Within a channel SMS are posted strictly in arrival order (so a thread reads in SMS order and its
parent exists before its replies); channels run concurrently, so one rate-limited or failing
channel never holds up another.

Exactly once: a row is claimed (pending -> posting) before its post and confirmed after. A row
found in `posting` means an earlier attempt may have reached Slack (the process died, or Slack
answered 5xx or not at all), so Slack is asked first, by the ids in our message metadata, and the
SMS is posted again only when it is not there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from smsbridge.alerts import AlertRule, alert_for
from smsbridge.backoff import Backoff
from smsbridge.errors import SlackAuthError, SlackRejectedError, SlackTransientError
from smsbridge.metrics import Metrics
from smsbridge.models import ThreadKey
from smsbridge.optouts import notice
from smsbridge.pipeline.group_commit import GroupCommit
from smsbridge.slack.poster import LookupIncomplete, SlackPoster
from smsbridge.slack.render import SlackMessage, render
from smsbridge.stopping import Stopped, StopSignal
from smsbridge.store.ledger import POSTING, Confirmation, LedgerRow
from smsbridge.store.store import Store

log = logging.getLogger(__name__)

LOOKBACK_MARGIN = 300.0  # seconds before a claim in which its post may have landed in Slack
# A post in doubt whose check cannot finish (Slack keeps paging) is retried for this long; after
# that the check could never cover it, and a possible second copy beats a lost SMS.
UNCONFIRMABLE_AFTER = 3600.0
# SMS read from the ledger at a time, per channel. Each read restarts the channel's pipeline
# (its confirms all written, its next SMS claimed anew), so a short read stalls often; 200 rows
# in ten channels hold a few MB. With CLAIM_AHEAD, draining is 25-50% faster (BENCHMARKS.md).
BATCH = 200
# A post's claim is written by the confirm of the post this many before it, so that commit has
# the time of the posts between to land. At 2, a draining channel waited for the database about
# half its time. After a kill -9, up to this many SMS per channel are in doubt (checked in Slack).
CLAIM_AHEAD = 3
CATCH_UP_NOTICE_AT = 20  # a backlog this large in one channel gets a notice and progress logs


class CatchUpProgress(Protocol):
    """Where a large catch-up reports its progress (a progress bar on a terminal)."""

    def start(self, channel: str, total: int) -> None: ...

    def advance(self, channel: str, done: int) -> None: ...

    def finish(self, channel: str) -> None: ...


class Delivery:
    def __init__(
        self,
        store: Store,
        poster: SlackPoster,
        account: str,
        stop: StopSignal,
        *,
        thread_idle_hours: float,
        on_fatal: Callable[[Exception], None],
        alerts: Sequence[AlertRule] = (),
        retry_cap: float = 60.0,
        holder: str = "",
        in_doubt_grace: float = 0.0,
        may_deliver: Callable[[], bool] = lambda: True,
        metrics: Metrics | None = None,
        progress: CatchUpProgress | None = None,
        away_after: float = 60.0,
    ) -> None:
        self._away_after = away_after  # a backlog older than this was received while we were away
        self._store = store
        self._poster = poster
        self._stop = stop
        self._account = account
        self._idle_seconds = thread_idle_hours * 3600
        self._on_fatal = on_fatal
        self._retry_cap = retry_cap
        self._alerts = tuple(alerts)
        self._holder = holder
        # How long another replica's claim may still have its post in flight. Zero when the
        # store proves no other process can exist (SQLite's single-writer lock).
        self._grace = in_doubt_grace
        self._may_deliver = may_deliver
        self._metrics = metrics or Metrics()
        self._label = self._metrics.account(account)  # metrics name accounts by label
        self._progress = progress
        self.last_error: str | None = None  # the latest Slack failure, until a post succeeds
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Posts that finish together (one per channel) are confirmed in one transaction.
        self._confirms: GroupCommit[Confirmation, float | None] = GroupCommit(
            self._write_confirms, max_batch=100, name=f"confirm:{account}"
        )
        self._dirty: set[str] = set()

    async def kick(self) -> None:
        """Make sure every channel with waiting SMS has a worker."""
        if self._stop.is_set() or not self._may_deliver():
            return
        self._metrics.backlog.labels(self._label).set(
            await self._store.ledger.backlog_size(self._account)
        )
        for channel in await self._store.ledger.backlog_channels(self._account):
            self.wake(channel)

    def wake(self, channel: str) -> None:
        """`channel` has a new SMS waiting: make sure its worker runs. Cheaper than `kick`
        (no query), for a caller that knows the channel (a push)."""
        if self._stop.is_set() or not self._may_deliver():
            return
        self._dirty.add(channel)
        worker = self._workers.get(channel)
        if worker is None or worker.done():
            self._workers[channel] = asyncio.create_task(
                self._work(channel), name=f"deliver:{channel}"
            )

    async def drain(self) -> None:
        """After the stop signal: let each worker finish the post in flight, then return."""
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no worker is running: a worker started meanwhile is waited for too."""
        while any(not task.done() for task in self._workers.values()):
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _work(self, channel: str) -> None:
        try:
            self._dirty.discard(channel)
            rows = await self._store.ledger.backlog(self._account, channel, BATCH)
            if len(rows) < BATCH:  # the whole backlog is in hand: no need to count it
                total, first, last = (
                    len(rows),
                    rows[0].seq if rows else 0,
                    rows[-1].seq if rows else 0,
                )
                oldest = min((row.sms.timestamp for row in rows), default=0)
            else:
                total, first, last, oldest = await self._store.ledger.backlog_extent(
                    self._account, channel
                )
            catch_up = total >= CATCH_UP_NOTICE_AT
            if catch_up:
                # once per catch-up: a restart in its middle finds its rows announced
                if not await self._store.catch_ups.announced(self._account, channel, first):
                    away = time.time() - oldest > self._away_after
                    if await self._announce_catch_up(channel, total, away=away):
                        await self._store.catch_ups.record(self._account, channel, last)
                if self._progress:
                    self._progress.start(channel, total)
            done = 0

            def posted_one() -> None:
                nonlocal done
                done += 1
                if catch_up and self._progress:
                    self._progress.advance(channel, min(done, total))
                if catch_up and (done % max(1, total // 10) == 0 or done == total):
                    log.info(
                        "catching up in %s: %d of %d SMS posted",
                        channel,
                        min(done, total),
                        total,
                        extra={"channel": channel, "done": min(done, total), "total": total},
                    )

            while not self._stop.is_set():
                await self._post_rows(rows, posted_one)
                if self._stop.is_set() or not self._may_deliver():
                    return
                # Every SMS stored for this channel wakes it (`wake`, or `kick` after a poll):
                # when the last read held all that waited and no wake came since, we are done,
                # without one more read per SMS that arrives alone.
                if len(rows) < BATCH and channel not in self._dirty:
                    return
                self._dirty.discard(channel)
                rows = await self._store.ledger.backlog(self._account, channel, BATCH)
        except Stopped:
            return
        except SlackAuthError as error:
            self._on_fatal(error)
        except Exception as error:  # a bug or a lost database: say so, the next kick retries
            log.exception("delivery to %s stopped unexpectedly: %s", channel, error)
        finally:
            if self._progress:
                self._progress.finish(channel)

    async def _post_rows(self, rows: Sequence[LedgerRow], posted_one: Callable[[], None]) -> None:
        """Post `rows` (one channel's, in order) until done or stopping, calling `posted_one`
        after each.

        Pipelined: the commit that confirms one SMS runs while the next ones are posted, so
        the channel does not wait for the database between posts. The first CLAIM_AHEAD rows
        are claimed together; then each confirm claims the row CLAIM_AHEAD after its own, and
        every confirm is written before this returns: the next read of the backlog must not
        find a posted SMS still waiting. A row claimed ahead but not posted (we are stopping)
        is released."""
        claims: dict[int, float] = {}  # row index -> its claim, made ahead
        confirming: list[tuple[int, asyncio.Future[float | None]]] = []  # (row it claims, ...)
        try:
            first = {
                row.sms.document_id: index
                for index, row in enumerate(rows[:CLAIM_AHEAD])
                if row.state != POSTING
            }
            if first and not self._stop.is_set() and self._may_deliver():
                took = await self._store.ledger.claim_many(self._account, list(first), self._holder)
                claims.update((first[ident], claimed) for ident, claimed in took.items())
            for index, row in enumerate(rows):
                while confirming and confirming[0][0] <= index:  # the confirm that claimed this
                    target, written = confirming.pop(0)
                    if (claimed := await written) is not None:
                        claims[target] = claimed
                if self._stop.is_set() or not self._may_deliver():
                    break
                ahead = rows[index + CLAIM_AHEAD] if index + CLAIM_AHEAD < len(rows) else None
                confirm = await self._deliver_with_retry(
                    row,
                    claims.pop(index, None),
                    ahead if ahead is not None and ahead.state != POSTING else None,
                )
                if confirm is not None:
                    confirming.append((index + CLAIM_AHEAD, confirm))
                posted_one()
        finally:
            # Awaited even when stopping or failing, each on its own: one failed commit leaves
            # its SMS in doubt (checked in Slack next time), and must not leave the others.
            failed: BaseException | None = None
            for target, written in confirming:
                try:
                    if (claimed := await written) is not None:
                        claims[target] = claimed
                except Exception as error:
                    failed = failed or error
            for index in claims:  # claimed, never posted: no doubt to leave
                await self._store.ledger.release(self._account, rows[index], self._holder)
            if failed is not None:
                raise failed

    async def _announce_catch_up(self, channel: str, total: int, *, away: bool) -> bool:
        """One line before a large backlog, so readers know why so many SMS arrive now: the
        bridge was away (its oldest SMS is older than `away_after`), or a burst came in."""
        text = (
            f":hourglass_flowing_sand: catching up {total} SMS received while the bridge was "
            "offline"
            if away
            else f":hourglass_flowing_sand: {total} SMS arrived at once; posting them in order"
        )
        notice = SlackMessage(
            text=text,
            blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}],
            metadata={"event_type": "sms_catch_up", "event_payload": {"count": total}},
        )
        log.info(
            "catching up %d SMS in %s", total, channel, extra={"channel": channel, "total": total}
        )
        try:
            await self._poster.post(channel, notice, None)
        except (SlackTransientError, SlackRejectedError) as error:  # the SMS matter, not the notice
            log.warning("could not post the catch-up notice in %s: %s", channel, error)
            return False
        return True

    async def _deliver_with_retry(
        self, row: LedgerRow, claimed_at: float | None, following: LedgerRow | None
    ) -> asyncio.Future[float | None] | None:
        """Post `row` (claimed at `claimed_at` already, or claimed here), retrying what may
        succeed later. Returns its confirm, being written, whose result is the claim of
        `following` (made in the same commit) or None; None when `row` was not posted."""
        alert = alert_for(self._alerts, row.sms.sender, row.sms.text)
        contact = (await self._store.contacts.book(self._account)).get(row.sms.sender)
        try:
            message = render(
                row.sms,
                mention=alert.mention if alert else None,
                note=notice(row.sms.text),
                name=contact.name if contact else None,
            )
        except Exception as error:  # one SMS we cannot render must not stall its channel
            log.exception("cannot render SMS %s", row.sms.document_id)
            await self._fail(row, f"cannot render it ({type(error).__name__})")
            return None
        # an alert inside a thread also shows in the channel, where on-call people look
        broadcast = bool(alert and alert.reply_broadcast)
        if row.state != POSTING:
            if claimed_at is None:
                claimed_at = await self._store.ledger.claim(
                    self._account, row.sms.document_id, self._holder
                )
            if claimed_at is None:
                return None  # someone else has it
            row = replace(row, claimed_at=claimed_at, claimed_by=self._holder)
        backoff = Backoff(base=1.0, cap=self._retry_cap)
        while True:
            try:
                return await self._deliver(row, message, broadcast, following)
            except SlackTransientError as error:
                self.last_error = str(error)
                delay = backoff.next_delay()
                log.warning(
                    "SMS %s to %s: %s; retrying in %.1fs",
                    row.sms.document_id,
                    row.channel,
                    error,
                    delay,
                )
                # The post may have landed: from now on the row is in doubt. It stays ours,
                # with its real claim time, so the retry checks Slack at once instead of
                # waiting out the grace meant for other replicas' claims.
                row = replace(row, state=POSTING, claimed_by=self._holder)
                await self._stop.sleep(delay)
            except SlackRejectedError as error:
                self.last_error = f"{row.channel}: {error.reason}"
                await self._fail(row, error.reason)
                return None

    async def _fail(self, row: LedgerRow, reason: str) -> None:
        await self._store.ledger.mark_failed(self._account, row.sms.document_id, reason)
        self._metrics.failed.labels(self._label).inc()
        log.error(
            "SMS %s could not be posted to %s: %s. It is kept as failed in the ledger.",
            row.sms.document_id,
            row.channel,
            reason,
        )

    async def _deliver(
        self, row: LedgerRow, message: SlackMessage, broadcast: bool, following: LedgerRow | None
    ) -> asyncio.Future[float | None]:
        """One attempt: find the thread, check Slack first if the row is in doubt, post.
        Returns the confirm being written (see `_deliver_with_retry`)."""
        sms = row.sms
        key = ThreadKey(row.channel, sms.sender, sms.origin_document_id or "")
        thread = await self._store.threads.get(self._account, key)
        thread_ts: str | None = None
        if thread is not None and (
            key.origin or sms.timestamp - thread.last_sms_timestamp <= self._idle_seconds
        ):
            thread_ts = thread.thread_ts
        if row.state == POSTING:
            claimed_at = row.claimed_at or time.time()
            if row.claimed_by != self._holder:  # another replica's claim: let its post finish
                await self._stop.sleep(claimed_at + self._grace - time.time())
            oldest = claimed_at - LOOKBACK_MARGIN
            try:
                found = await self._poster.find_posted(
                    row.channel, sms.document_id, thread_ts, oldest
                )
            except LookupIncomplete as error:
                if time.time() - claimed_at < UNCONFIRMABLE_AFTER:
                    raise  # retried with backoff
                log.warning(
                    "%s, for over %.0f minutes; posting it now, so a second copy is possible",
                    error,
                    UNCONFIRMABLE_AFTER / 60,
                )
                found = None
            if found is not None:
                log.info("SMS %s was already in Slack; not posting it again", sms.document_id)
                return self._confirm(row, found, key, thread_ts or found, following)
        ts = await self._poster.post(
            row.channel, message, thread_ts, reply_broadcast=broadcast and thread_ts is not None
        )
        confirm = self._confirm(row, ts, key, thread_ts or ts, following)
        self.last_error = None
        self._metrics.bridged.labels(self._label).inc()
        self._metrics.lag.labels(self._label).observe(max(0.0, time.time() - sms.timestamp))
        return confirm

    def _confirm(
        self, row: LedgerRow, ts: str, key: ThreadKey, thread_ts: str, following: LedgerRow | None
    ) -> asyncio.Future[float | None]:
        # The next SMS may be posted before this commit lands: it must find this thread.
        self._store.threads.posted(self._account, key, thread_ts, row.sms.timestamp)
        # A later SMS is claimed in the same commit, unless we are about to stop posting.
        if self._stop.is_set() or not self._may_deliver():
            following = None
        return self._confirms.enqueue(Confirmation(row, ts, key, thread_ts, following))

    async def _write_confirms(self, batch: Sequence[Confirmation]) -> list[float | None]:
        return await self._store.ledger.confirm_many(self._account, batch, self._holder)
