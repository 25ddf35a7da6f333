"""`/sms send Jane Doe …`: which words name a contact, and what is left is the SMS. Pure.

The longest run of leading words that is exactly a contact's name (ignoring case and spacing)
wins, so "Jane Doe" beats "Jane" when both are contacts. A name that belongs to several
numbers, or to none, is an answer naming the candidates, never a guess: an SMS to the wrong
person cannot be taken back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from smsbridge.contacts_file import ContactEntry
from smsbridge.slack.render import escape, person

MAX_NAME_WORDS = 8
SHOWN = 5  # candidates an answer lists
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Recipient:
    contact: ContactEntry
    rest: str  # what follows the name: [from <line>] <text>


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def find_recipient(typed: str, book: Iterable[ContactEntry]) -> Recipient | str:
    """The contact whose name starts `typed`, or why there is none (for the person, escaped)."""
    keyed = [(_key(contact.name), contact) for contact in book]  # once: a book can be large
    words = list(_WORD.finditer(typed))
    if not words:
        return "say whom to send to: a number, or a contact's name"
    for count in range(min(len(words), MAX_NAME_WORDS), 0, -1):
        wanted = _key(" ".join(word.group() for word in words[:count]))
        named = [contact for key, contact in keyed if key == wanted]
        if len(named) > 1:
            return (
                f"{len(named)} contacts are named {escape(named[0].name)}: "
                f"{_listed(named)}; send to the number instead"
            )
        if named:
            return Recipient(named[0], typed[words[count - 1].end() :].strip())
    first = words[0].group()
    close = [contact for key, contact in keyed if first.casefold() in key]
    if not close:
        return (
            "no contact has that name; send to a number, or name it first with "
            "`/sms contact add <number> <name>`"
        )
    return (
        f"no contact has that name. Contacts with “{escape(first[:40])}” in their name: "
        f"{_listed(close)}"
    )


def _listed(contacts: list[ContactEntry]) -> str:
    ordered = sorted(contacts, key=lambda contact: (_key(contact.name), contact.number))
    listed = ", ".join(person(contact.number, contact.name) for contact in ordered[:SHOWN])
    more = len(ordered) - SHOWN
    return listed + (f" and {more} more" if more > 0 else "")
