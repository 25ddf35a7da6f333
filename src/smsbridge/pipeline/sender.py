"""Sender: SMS that people wrote in Slack go out through the provider, one account's worker.

    outbox row (queued) -> claim -> sendSingle2 -> sent: the provider's id joins the thread map
                                                -> failed or refused: the thread says why

Exactly once: a row is claimed before it is sent. A send that may have gone out without an
answer (a timeout, a dropped connection), and a row found claimed when a worker starts (in
flight when a process stopped), are in doubt: the provider's list of sent SMS (`allMessages`)
is asked for one with the same recipient and text since the claim. Found: it was sent. Not
found once the provider has had IN_DOUBT_SETTLE seconds to list it: it never went out, and is
sent now. Only if that check itself cannot be made is the person asked to check instead.
Feedback sits on the person's own message: a reaction when it is sent, a reply that explains
any refusal in words.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from smsbridge.backoff import Backoff
from smsbridge.errors import (
    ProviderInDoubtError,
    ProviderRejectedError,
    ProviderTransientError,
)
from smsbridge.metrics import Metrics
from smsbridge.provider.statuses import DELIVERED, NOT_DELIVERED, is_final, next_check
from smsbridge.slack.poster import SlackPoster
from smsbridge.slack.render import bridge_message, escape
from smsbridge.stopping import Stopped, StopSignal
from smsbridge.store.outbox import OutboundSms, OutState
from smsbridge.store.store import Store

log = logging.getLogger(__name__)

QUEUED_REACTION = "hourglass_flowing_sand"  # on the person's message while it waits
RETRYING_REACTION = "repeat"  # the provider failed for now; it is being tried again
SENT_REACTION = "white_check_mark"
DELIVERED_REACTION = "mailbox_with_mail"
FAILED_REACTION = "x"
IN_DOUBT = (
    "it may or may not have gone out (the SMS provider did not answer, and its list of sent SMS "
    "could not be read), so it is not sent again: please check with the customer before resending"
)
IN_DOUBT_SETTLE = 60.0  # seconds the provider may take to list an SMS it has sent
LOOKBACK = 60  # seconds before a claim in which the provider may have stamped the SMS


class SmsSender(Protocol):
    async def send(self, recipient: str, text: str, sender: str | None) -> str: ...

    async def sent_since(self, since: int) -> list[tuple[str, str, str]]: ...

    async def message_status(self, document_id: str) -> int | None: ...


class Sender:
    def __init__(
        self,
        store: Store,
        provider: SmsSender,
        poster: SlackPoster,
        account: str,
        stop: StopSignal,
        *,
        holder: str,
        may_send: Callable[[], bool] = lambda: True,
        retry_cap: float = 60.0,
        metrics: Metrics | None = None,
        status_query: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._status_query = status_query  # the provider enabled it for this account
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._label = self._metrics.account(account)  # metrics name accounts by label
        self._store = store
        self._provider = provider
        self._poster = poster
        self._account = account
        self._stop = stop
        self._holder = holder
        self._may_send = may_send
        self._retry_cap = retry_cap
        self._worker: asyncio.Task[None] | None = None
        self._dirty = False

    async def kick(self) -> None:
        """There may be SMS to send: make sure the worker runs."""
        if self._stop.is_set() or not self._may_send():
            return
        self._dirty = True
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"send:{self._account}")

    async def idle(self) -> None:
        """Wait until the worker has nothing left to do."""
        while self._worker is not None and not self._worker.done():
            await asyncio.wait({self._worker})

    async def _work(self) -> None:
        try:
            while self._dirty and not self._stop.is_set() and self._may_send():
                self._dirty = False
                for sms in await self._store.outbox.waiting(self._account):
                    if self._stop.is_set() or not self._may_send():
                        return
                    await self._send_with_retry(sms)
                if self._status_query:
                    await self._ask_statuses()
        except Stopped:
            return
        except Exception as error:  # a bug or a lost database: say so, the next kick retries
            log.exception("sending SMS for %s stopped unexpectedly: %s", self._account, error)

    async def _send_with_retry(self, sms: OutboundSms) -> None:
        if sms.state == OutState.SENDING:  # in flight when a process stopped
            await self._settle(sms, sms.claimed_at or time.time())
            return
        if not await self._store.outbox.claim(sms.seq, self._holder):
            return  # someone else has it
        await self._send(sms)

    async def _send(self, sms: OutboundSms) -> None:
        """Send a claimed SMS: retried while it surely did not go out; in doubt, it stays
        claimed and is settled on a later wake-up (see `_settle`), holding nothing up."""
        backoff = Backoff(base=1.0, cap=self._retry_cap)
        while True:
            try:
                provider_id = await self._provider.send(sms.recipient, sms.text, sms.line)
            except ProviderInDoubtError as error:
                log.warning("an SMS from Slack may or may not have gone out: %s", error)
                return
            except ProviderRejectedError as error:
                await self._fail(sms, OutState.FAILED, f"{error.meaning}. {error.fix}")
                return
            except ProviderTransientError as error:  # not sent: safe to try again
                if not backoff.failures:  # the first failure: show that it is being retried
                    await self._poster.react(sms.channel, sms.slack_ts, RETRYING_REACTION)
                delay = backoff.next_delay()
                log.warning(
                    "an SMS from Slack is not sent yet: %s; retrying in %.1fs", error, delay
                )
                await self._stop.sleep(delay)
                continue
            await self._sent(sms, provider_id)
            return

    async def _settle(self, sms: OutboundSms, claimed_at: float) -> None:
        """One look at whether an SMS in doubt went out: listed -> sent; not listed a while
        after its claim -> it never went out, send it now; else look again on a later wake-up
        (after the next poll), so an SMS in doubt never holds up the others."""
        try:
            listed = await self._provider.sent_since(int(claimed_at) - LOOKBACK)
        except ProviderRejectedError as error:
            await self._fail(sms, OutState.FAILED, f"{IN_DOUBT} ({error.meaning})")
            return
        except ProviderTransientError as error:
            if time.time() - claimed_at > 10 * IN_DOUBT_SETTLE:
                await self._fail(sms, OutState.FAILED, IN_DOUBT)
            else:
                log.warning("cannot read the provider's sent SMS yet: %s", error)
            return
        for provider_id, recipient, text in reversed(listed):
            if (recipient, text) == (sms.recipient, sms.text) and not (
                await self._store.outbox.knows(self._account, provider_id)
            ):
                log.info("an SMS in doubt had gone out as %s; not sending it again", provider_id)
                await self._sent(sms, provider_id)
                return
        if time.time() - claimed_at >= IN_DOUBT_SETTLE:
            log.info("an SMS in doubt had not gone out; sending it now")
            await self._store.outbox.reclaim(sms.seq, self._holder)  # a fresh claim time
            await self._send(sms)

    async def _ask_statuses(self) -> None:
        """The final word on SMS sent from Slack: delivered, or why not, on the person's message."""
        now = self._clock()
        for sms in await self._store.outbox.status_due(self._account, now):
            if sms.provider_id is None or self._stop.is_set():
                return
            try:
                status = await self._provider.message_status(sms.provider_id)
            except (ProviderTransientError, ProviderRejectedError) as error:
                log.info("cannot read an SMS's delivery status yet: %s", error)
                status = None
            if status is not None and is_final(status):
                await self.final_status(sms, status)
                continue
            await self._store.outbox.delivery(sms.seq, status, next_check(sms.done_at or now, now))

    async def final_status(self, sms: OutboundSms, status: int) -> None:
        """Delivered, or why not, on the person's message (asked for, or pushed to us)."""
        if sms.delivery_status is not None and is_final(sms.delivery_status):
            return  # told already (the query and a push may both bring it)
        await self._store.outbox.delivery(sms.seq, status, None)
        if status == DELIVERED:
            await self._poster.react(sms.channel, sms.slack_ts, DELIVERED_REACTION)
            return
        self._metrics.outbound.labels(self._label, "undelivered").inc()
        await not_sent(
            self._poster,
            sms.channel,
            sms.slack_ts,
            sms.thread_ts,
            f"{NOT_DELIVERED[status]} (status {status})",
            headline="This SMS was sent, but not delivered",
        )

    async def _sent(self, sms: OutboundSms, provider_id: str) -> None:
        due = next_check(self._clock(), self._clock()) if self._status_query else None
        await self._store.outbox.sent(sms, provider_id, due)
        self._metrics.outbound.labels(self._label, "sent").inc()
        log.info("SMS sent from Slack as %s", provider_id, extra={"account": self._account})
        await self._poster.react(sms.channel, sms.slack_ts, QUEUED_REACTION, add=False)
        await self._poster.react(sms.channel, sms.slack_ts, SENT_REACTION)

    async def _fail(self, sms: OutboundSms, state: OutState, reason: str) -> None:
        await self._store.outbox.finish(sms.seq, state, reason)
        self._metrics.outbound.labels(self._label, state.value).inc()
        log.warning("SMS from Slack not sent: %s", reason, extra={"account": self._account})
        await not_sent(self._poster, sms.channel, sms.slack_ts, sms.thread_ts, reason)


async def not_sent(
    poster: SlackPoster,
    channel: str,
    ts: str,
    thread_ts: str | None,
    reason: str,
    headline: str = "This SMS was not sent",
) -> None:
    """Tell the person, on their message and in its thread, that their SMS was not sent and
    why. Feedback, so a failure here is only logged."""
    await poster.react(channel, ts, QUEUED_REACTION, add=False)
    await poster.react(channel, ts, FAILED_REACTION)
    text = f":x: {headline}: {escape(reason)}"
    message = bridge_message(text, "sms_outbound_status", {"slack_ts": ts})
    await poster.note(channel, message, thread_ts or ts)
