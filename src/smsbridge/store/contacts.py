"""The contact book: numbers people know by name, per provider account, shared by replicas.

Rendering an SMS asks for a name on every post, so each process keeps the book of each account
in memory and reads it again when it is older than BOOK_TTL (another replica, or the import
command, may have changed it); a change made through this process is seen at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from smsbridge.contacts_file import ContactEntry
from smsbridge.store.dialects import conflict_insert
from smsbridge.store.schema import contacts

BOOK_TTL = 30.0  # seconds a process trusts its copy of a book
BOOK_LIMIT = 100_000  # contacts per account held in memory: a bound, far above real books
_ENTRY = (contacts.c.number, contacts.c.name, contacts.c.note)  # as ContactEntry orders them


@dataclass(frozen=True)
class Saved:
    added: int
    changed: int
    unchanged: int


class Contacts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._books: dict[str, tuple[float, dict[str, ContactEntry]]] = {}
        self._insert = conflict_insert(engine)

    async def save_many(self, account: str, entries: Sequence[ContactEntry]) -> Saved:
        """Add or update each entry, in one transaction: an import run twice changes nothing."""
        known = {
            entry.number: entry
            for entry in await self._read(account, [entry.number for entry in entries])
        }
        fresh = [entry for entry in entries if known.get(entry.number) != entry]
        if fresh:
            statement = self._insert(contacts)
            statement = statement.on_conflict_do_update(
                index_elements=["account", "number"],
                set_={
                    "name": statement.excluded.name,
                    "note": statement.excluded.note,
                    "updated_at": statement.excluded.updated_at,
                },
            )
            now = time.time()
            async with self._engine.begin() as conn:
                await conn.execute(
                    statement,
                    [
                        {
                            "account": account,
                            "number": entry.number,
                            "name": entry.name,
                            "note": entry.note,
                            "updated_at": now,
                        }
                        for entry in fresh
                    ],
                )
            self._books.pop(account, None)
        added = sum(1 for entry in fresh if entry.number not in known)
        return Saved(added, len(fresh) - added, len(entries) - len(fresh))

    async def get(self, account: str, number: str) -> ContactEntry | None:
        """The number's entry as stored now (not the in-memory copy of the book)."""
        found = await self._read(account, [number])
        return found[0] if found else None

    async def remove(self, account: str, number: str) -> ContactEntry | None:
        """The entry removed, or None if the number had none."""
        entry = await self.get(account, number)
        if entry is not None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(contacts).where(
                        contacts.c.account == account, contacts.c.number == number
                    )
                )
            self._books.pop(account, None)
        return entry

    async def listing(self, account: str, limit: int) -> tuple[list[ContactEntry], int]:
        """The first `limit` contacts by name, and how many there are in all."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(*_ENTRY)
                .where(contacts.c.account == account)
                .order_by(func.lower(contacts.c.name), contacts.c.number)
                .limit(limit)
            )
            total = await conn.execute(
                select(func.count()).select_from(contacts).where(contacts.c.account == account)
            )
            return [ContactEntry(*row) for row in rows], int(total.scalar_one())

    async def book(self, account: str) -> dict[str, ContactEntry]:
        """Every contact of the account by number (a copy at most BOOK_TTL old)."""
        cached = self._books.get(account)
        now = time.monotonic()
        if cached is not None and now - cached[0] < BOOK_TTL:
            return cached[1]
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(*_ENTRY).where(contacts.c.account == account).limit(BOOK_LIMIT)
            )
            book = {row.number: ContactEntry(*row) for row in rows}
        self._books[account] = (now, book)
        return book

    async def _read(self, account: str, numbers: Sequence[str]) -> list[ContactEntry]:
        found: list[ContactEntry] = []
        async with self._engine.connect() as conn:
            for start in range(0, len(numbers), 500):  # keep IN (...) lists modest
                rows = await conn.execute(
                    select(*_ENTRY).where(
                        contacts.c.account == account,
                        contacts.c.number.in_(numbers[start : start + 500]),
                    )
                )
                found.extend(ContactEntry(*row) for row in rows)
        return found
