"""The outbox: SMS that people send from Slack, recorded before Slack's event is acknowledged.

    queued -> sending (claimed: the provider may have it) -> sent | failed
    refused: never sent (opted out, too long, not allowed), with the reason

One row per Slack message (channel, ts): Slack delivers an event again when it is unsure we got
it, and the second delivery finds the row and sends nothing. Once an SMS is sent, failed or
refused its text leaves the row (the person's message in Slack holds it; `drop_sent_text`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import RowMapping, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.models import ThreadKey
from smsbridge.store.dialects import conflict_insert
from smsbridge.store.schema import outbound
from smsbridge.store.states import count_states
from smsbridge.store.threads import Threads


class OutState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboundSms:
    seq: int
    account: str
    channel: str
    slack_ts: str
    thread_ts: str | None
    user: str
    recipient: str
    line: str | None
    text: str
    state: OutState
    provider_id: str | None = None
    reason: str | None = None
    claimed_at: float | None = None
    done_at: float | None = None
    delivery_status: int | None = None


class Outbox:
    def __init__(self, engine: AsyncEngine, threads: Threads) -> None:
        self._engine = engine
        self._threads = threads  # a sent SMS's id joins the thread map: answers thread under it
        self.drop_sent_text = True  # SMSBRIDGE_DROP_POSTED_TEXT

    async def record(
        self,
        account: str,
        channel: str,
        slack_ts: str,
        thread_ts: str | None,
        user: str,
        recipient: str,
        line: str | None,
        text: str,
        *,
        refused: str | None = None,
    ) -> bool:
        """Queue an SMS (or record why it is refused); False when this Slack message was
        recorded before (a repeated event)."""
        insert = conflict_insert(self._engine)
        now = time.time()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                insert(outbound)
                .values(
                    account=account,
                    channel=channel,
                    slack_ts=slack_ts,
                    thread_ts=thread_ts,
                    user=user,
                    recipient=recipient,
                    line=line,
                    text=text,
                    state=OutState.REFUSED if refused else OutState.QUEUED,
                    reason=refused,
                    created_at=now,
                    done_at=now if refused else None,
                )
                .on_conflict_do_nothing(index_elements=["channel", "slack_ts"])
            )
            return bool(result.rowcount)

    async def waiting(self, account: str, limit: int = 50) -> list[OutboundSms]:
        """Queued SMS (and any left claimed by a stopped process), oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(outbound)
                .where(
                    outbound.c.account == account,
                    outbound.c.state.in_((OutState.QUEUED, OutState.SENDING)),
                )
                .order_by(outbound.c.seq)
                .limit(limit)
            )
            return [_row(row._mapping) for row in rows]

    async def claim(self, seq: int, holder: str) -> bool:
        """queued -> sending; False if it was not queued (someone else has it)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(outbound)
                .where(outbound.c.seq == seq, outbound.c.state == OutState.QUEUED)
                .values(state=OutState.SENDING, claimed_at=time.time(), claimed_by=holder)
            )
            return result.rowcount == 1

    async def reclaim(self, seq: int, holder: str) -> None:
        """A new claim time for an SMS about to be sent again (it never went out)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbound)
                .where(outbound.c.seq == seq)
                .values(claimed_at=time.time(), claimed_by=holder)
            )

    async def sent(
        self, sms: OutboundSms, provider_id: str, status_due: float | None = None
    ) -> None:
        """sending -> sent, and the thread map learns the id, in one transaction: the
        customer's answer (origin = this id) lands in this SMS's Slack thread. `status_due`:
        when to ask for its delivery status, for accounts with the status query."""
        thread_ts = sms.thread_ts or sms.slack_ts
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbound)
                .where(outbound.c.seq == sms.seq)
                .values(
                    state=OutState.SENT,
                    provider_id=provider_id,
                    done_at=time.time(),
                    status_due=status_due,
                    **self._dropped(),
                )
            )
            key = ThreadKey(sms.channel, sms.recipient, provider_id)
            [entry] = await self._threads.remember_many(
                conn, sms.account, [(key, thread_ts, int(time.time()))]
            )
        self._threads.learned(sms.account, key, entry)

    async def finish(self, seq: int, state: OutState, reason: str) -> None:
        """-> failed or refused, with the reason a person will read."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbound)
                .where(outbound.c.seq == seq)
                .values(state=state, reason=reason, done_at=time.time(), **self._dropped())
            )

    def _dropped(self) -> dict[str, str]:
        return {"text": ""} if self.drop_sent_text else {}

    async def prune(self, account: str, before: float) -> int:
        """Retention: forget SMS sent (or refused, or failed) from Slack before `before`."""
        async with self._engine.begin() as conn:
            removed = await conn.execute(
                delete(outbound).where(
                    outbound.c.account == account,
                    outbound.c.state.in_((OutState.SENT, OutState.REFUSED, OutState.FAILED)),
                    outbound.c.created_at < before,
                )
            )
            return removed.rowcount

    async def status_due(self, account: str, now: float, limit: int = 50) -> list[OutboundSms]:
        """Sent SMS whose delivery status is due to be asked for."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(outbound)
                .where(
                    outbound.c.account == account,
                    outbound.c.state == OutState.SENT,
                    outbound.c.status_due <= now,
                )
                .order_by(outbound.c.status_due)
                .limit(limit)
            )
            return [_row(row._mapping) for row in rows]

    async def delivery(self, seq: int, status: int | None, next_due: float | None) -> None:
        """Record a delivery status (final or not) and when to ask next (None: never)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbound)
                .where(outbound.c.seq == seq)
                .values(delivery_status=status, status_due=next_due)
            )

    async def by_provider_id(self, provider_id: str) -> OutboundSms | None:
        """The SMS sent from Slack that the provider knows by this id, in any account."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(outbound).where(outbound.c.provider_id == provider_id))
            ).first()
            return None if row is None else _row(row._mapping)

    async def knows(self, account: str, provider_id: str) -> bool:
        """Whether an SMS with this provider id is already recorded as ours (sent)."""
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(outbound.c.seq).where(
                    outbound.c.account == account, outbound.c.provider_id == provider_id
                )
            )
            return row.first() is not None

    async def counts(self, account: str) -> dict[str, int]:
        """Outbound SMS per state."""
        return await count_states(self._engine, outbound, account, OutState)

    async def get(self, channel: str, slack_ts: str) -> OutboundSms | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(outbound).where(
                        outbound.c.channel == channel, outbound.c.slack_ts == slack_ts
                    )
                )
            ).first()
            return None if row is None else _row(row._mapping)


def _row(values: RowMapping) -> OutboundSms:
    return OutboundSms(
        seq=values["seq"],
        account=values["account"],
        channel=values["channel"],
        slack_ts=values["slack_ts"],
        thread_ts=values["thread_ts"],
        user=values["user"],
        recipient=values["recipient"],
        line=values["line"],
        text=values["text"],
        state=OutState(values["state"]),
        provider_id=values["provider_id"],
        reason=values["reason"],
        claimed_at=values["claimed_at"],
        done_at=values["done_at"],
        delivery_status=values["delivery_status"],
    )
