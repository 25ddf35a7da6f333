"""A contact book file (`smsbridge contacts import FILE`) read into entries. Pure.

Two formats, told apart by their first line:

- CSV with a header row `number,name` and an optional `note` column (any order, any case), as
  a spreadsheet exports it;
- vCard (`BEGIN:VCARD` …), as a phone or address book exports it: versions 2.1, 3.0 and 4.0,
  quoted-printable names included (vobject reads them). Each `TEL` of a card is an entry with
  the card's name (`FN`, else `N`) and `NOTE`.

Numbers are read as people write them (`0409 560 857`) in the default region. A row or card
that cannot be read is reported with its line number and the reason, and the rest still load.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smsbridge.numbers import normalise_number

if TYPE_CHECKING:
    import vobject

MAX_FILE_BYTES = 5_000_000
MAX_ENTRIES = 50_000
MAX_NAME = 100
MAX_NOTE = 200


@dataclass(frozen=True, slots=True)
class ContactEntry:
    number: str  # as the provider writes it: 61409560857
    name: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Unreadable:
    line: int
    reason: str


@dataclass(frozen=True)
class ContactsFile:
    entries: list[ContactEntry]
    unreadable: list[Unreadable]


class ContactsFileError(ValueError):
    """The file as a whole cannot be read (no header, not text, too big)."""


def check_name(name: str) -> str:
    """A contact's name, trimmed; ValueError with a reason a person can act on."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("the name is empty")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"the name is longer than {MAX_NAME} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise ValueError("the name holds control characters")
    return cleaned


def check_note(note: str) -> str:
    cleaned = " ".join(note.split())
    if len(cleaned) > MAX_NOTE:
        raise ValueError(f"the note is longer than {MAX_NOTE} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise ValueError("the note holds control characters")
    return cleaned


def read_contacts(data: bytes, region: str) -> ContactsFile:
    """Entries from a CSV or vCard file's bytes; the first entry of a number wins."""
    if len(data) > MAX_FILE_BYTES:
        raise ContactsFileError(f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContactsFileError(
            f"the file is not UTF-8 text (byte {error.start}); save it as UTF-8 CSV or vCard"
        ) from None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    rows = _vcard_rows(text) if first.upper() == "BEGIN:VCARD" else _csv_rows(text)
    entries: list[ContactEntry] = []
    unreadable: list[Unreadable] = []
    seen: dict[str, int] = {}
    for line, fields in rows:
        if isinstance(fields, str):
            unreadable.append(Unreadable(line, fields))
            continue
        number_text, name_text, note_text = fields
        try:
            number = normalise_number(number_text, region)
            entry = ContactEntry(number, check_name(name_text), check_note(note_text))
        except ValueError as error:
            unreadable.append(Unreadable(line, str(error)))
            continue
        if number in seen:
            unreadable.append(Unreadable(line, f"the number is already on line {seen[number]}"))
            continue
        if len(entries) >= MAX_ENTRIES:
            unreadable.append(Unreadable(line, f"more than {MAX_ENTRIES} contacts in one file"))
            break
        seen[number] = line
        entries.append(entry)
    return ContactsFile(entries, unreadable)


Row = tuple[int, tuple[str, str, str] | str]  # (line, (number, name, note) or why unreadable)


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except StopIteration:
        raise ContactsFileError("the file is empty") from None
    except csv.Error as error:
        raise ContactsFileError(f"line 1 is not CSV ({error})") from None
    if "number" not in header or "name" not in header:
        raise ContactsFileError(
            "the first row must be the header number,name (and optionally note); "
            f"found {','.join(header)[:80]!r}"
        )
    at = {column: header.index(column) for column in ("number", "name", "note") if column in header}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield line, f"not CSV ({error})"
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) < len(header):
            yield line, f"{len(cells)} columns where the header has {len(header)}"
            continue
        note = cells[at["note"]] if "note" in at else ""
        yield line, (cells[at["number"]], cells[at["name"]], note)


def _vcard_rows(text: str) -> Iterator[Row]:
    """Each card parsed on its own, so that one broken card costs only itself."""
    card: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        keyword = line.strip().upper()
        if keyword == "BEGIN:VCARD":
            card, start = [line], number
        elif card:
            card.append(line)
            if keyword == "END:VCARD":
                yield from _card(start, "\r\n".join(card) + "\r\n")
                card = []
    if card:
        yield start, "the card has no END:VCARD"


def _card(line: int, source: str) -> Iterator[Row]:
    import vobject  # here, not at the top: `smsbridge run` never reads a file (5 MiB, 0.1 s)

    try:
        card = vobject.readOne(source)
    except Exception as error:  # vobject raises assorted errors for assorted damage
        yield line, f"not a readable vCard ({type(error).__name__})"
        return
    name = _card_name(card)
    phones = card.contents.get("tel", [])
    if not phones:
        yield line, "the card has no TEL (phone number)"
        return
    notes = card.contents.get("note", [])
    note = str(_value(notes[0])) if notes else ""
    for phone in phones:
        # vCard 4.0 writes numbers as URIs: tel:+61-409-560-857
        number = str(_value(phone)).strip()
        yield line, (number[4:] if number.lower().startswith("tel:") else number, name, note)


def _card_name(card: vobject.base.Component) -> str:
    formatted = card.contents.get("fn", [])
    if formatted and str(_value(formatted[0])).strip():
        return str(_value(formatted[0]))
    structured = card.contents.get("n", [])
    if structured:
        value = _value(structured[0])
        parts = (getattr(value, "given", ""), getattr(value, "family", ""))
        return " ".join(str(part) for part in parts if part)
    return ""


def _value(item: object) -> object:
    """A content line's value (vobject's typing knows only its base class)."""
    return getattr(item, "value", "")
