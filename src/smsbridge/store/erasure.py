"""Erasure on request: a person's data out of the database (`smsbridge forget <number>`).

What goes: the SMS they sent us (text, number, thread), the SMS we sent them from Slack, their
threads and their contact entry, in every account. What stays, and why:

- The provider's id of an SMS they sent that the gateway can still list (at or after the
  account's cursor): the row stays as `forgotten`, with its number and text gone, so that the
  next poll recognises the id and does not post the SMS again. Retention removes it later.
- Their opt-out, unless asked: it is what keeps SMS from going to them again.

Slack keeps what was posted there, and the gateway keeps its own history; the command says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.store.ledger import FORGOTTEN
from smsbridge.store.schema import contacts, cursors, ledger, optouts, outbound, threads


@dataclass(frozen=True)
class Forgotten:
    """What one erasure removed (counts of rows)."""

    received: int
    sent: int
    threads: int
    contacts: int
    opt_outs_removed: int
    opt_outs_kept: int


class Erasure:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def forget(self, number: str, *, opt_out_too: bool = False) -> Forgotten:
        """Remove `number` (as the provider writes it: 61409560857) from every table, in one
        transaction."""
        async with self._engine.begin() as conn:
            # An SMS at or after its account's cursor can be listed again by the next poll:
            # its id must stay known, or it would be posted a second time.
            relistable = (
                select(cursors.c.since)
                .where(cursors.c.account == ledger.c.account)
                .scalar_subquery()
            )
            blanked = await conn.execute(
                update(ledger)
                # no cursor yet: the first poll may list anything, so every id stays
                .where(
                    ledger.c.sender == number,
                    ledger.c.sms_timestamp >= func.coalesce(relistable, 0),
                )
                .values(
                    state=FORGOTTEN,
                    sender="",
                    text="",
                    text_hash=None,
                    origin_document_id=None,
                    reason=None,
                    claimed_at=None,
                    claimed_by=None,
                    done_at=func.coalesce(ledger.c.done_at, ledger.c.received_at),
                )
            )
            removed = await conn.execute(delete(ledger).where(ledger.c.sender == number))
            sent = await conn.execute(delete(outbound).where(outbound.c.recipient == number))
            their_threads = await conn.execute(delete(threads).where(threads.c.sender == number))
            contact = await conn.execute(delete(contacts).where(contacts.c.number == number))
            opted_out = await conn.execute(
                select(func.count()).select_from(optouts).where(optouts.c.number == number)
            )
            opt_outs = int(opted_out.scalar_one())
            if opt_out_too:
                await conn.execute(delete(optouts).where(optouts.c.number == number))
        return Forgotten(
            received=blanked.rowcount + removed.rowcount,
            sent=sent.rowcount,
            threads=their_threads.rowcount,
            contacts=contact.rowcount,
            opt_outs_removed=opt_outs if opt_out_too else 0,
            opt_outs_kept=0 if opt_out_too else opt_outs,
        )
