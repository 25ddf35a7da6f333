"""Intake of pushed SMS: into the ledger, many per transaction when they come fast (group
commit), each durable before the gateway hears 200."""

from __future__ import annotations

from collections.abc import Sequence

from smsbridge.models import InboundSms
from smsbridge.pipeline.group_commit import GroupCommit
from smsbridge.store.ledger import Ledger

MAX_BATCH = 200  # SMS per transaction: a bound on how long one commit holds the writer

Pushed = tuple[str, InboundSms, str | None]  # account, SMS, channel (None: no route)


class PushIntake:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._commits: GroupCommit[Pushed, bool] = GroupCommit(
            self._write, max_batch=MAX_BATCH, name="push intake"
        )

    async def store(self, account: str, sms: InboundSms, channel: str | None) -> bool:
        """Once the SMS is committed: True if it was new. Raises what the database raised."""
        return await self._commits.submit((account, sms, channel))

    async def _write(self, batch: Sequence[Pushed]) -> list[bool]:
        return await self._ledger.ingest_pushed_many(batch)
