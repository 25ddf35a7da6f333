"""Contact book files (`smsbridge contacts import`): CSV and vCard, read line by line."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.contacts_file import (
    MAX_FILE_BYTES,
    ContactEntry,
    ContactsFileError,
    Unreadable,
    read_contacts,
)

JANE, BOB = "61409560857", "447700900123"


def test_csv_with_note_in_any_column_order_and_case() -> None:
    book = read_contacts(
        b"Name,NUMBER,note\r\nJane Doe,0409 560 857,Site 14 foreman\r\nBob,+44 7700 900123,\r\n",
        "AU",
    )
    assert book.entries == [
        ContactEntry(JANE, "Jane Doe", "Site 14 foreman"),
        ContactEntry(BOB, "Bob", ""),
    ]
    assert book.unreadable == []


def test_csv_problems_are_reported_by_line_and_the_rest_load() -> None:
    data = (
        "\ufeffnumber,name\n"  # a spreadsheet's byte-order mark
        "0409 560 857,Jane Doe\n"
        "not a number,Nobody\n"
        "\n"  # blank lines are skipped, not errors
        "+61409560857,Jane Again\n"
        "0412 345 678,   \n"
        "0412 345 679\n"
        "0412 345 680,\x07bell\n"
        "0412 345 681,Kept\n"
    ).encode()
    book = read_contacts(data, "AU")
    assert [entry.name for entry in book.entries] == ["Jane Doe", "Kept"]
    assert book.unreadable == [
        Unreadable(3, "'not a number' is not a phone number"),
        Unreadable(5, "the number is already on line 2"),
        Unreadable(6, "the name is empty"),
        Unreadable(7, "1 columns where the header has 2"),
        Unreadable(8, "the name holds control characters"),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"phone,who\n0409560857,Jane\n", "the first row must be the header number,name"),
        (b"number,name\n\xff\xfe,Jane\n", "not UTF-8"),
        (b"x" * (MAX_FILE_BYTES + 1), "larger than"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(ContactsFileError, match=reason):
        read_contacts(data, "AU")


VCARDS = """BEGIN:VCARD
VERSION:2.1
N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:D=C3=B6e;J=C3=A1ne;;;
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=A1ne D=C3=B6e
TEL;CELL:0409 560 857
TEL;WORK:+61 2 9999 0000
NOTE:Site 14 foreman
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Builder;Bob;;;
TEL;TYPE=CELL:+44 7700
  900123
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:No Phone
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Broken
TEL;VALUE=uri:tel:zzz
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Uri Number
TEL;VALUE=uri;TYPE=cell:tel:+61-412-345-678
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Cut off
"""


def test_vcards_quoted_printable_several_numbers_folded_lines_and_broken_cards() -> None:
    book = read_contacts(VCARDS.encode(), "AU")
    assert book.entries == [
        ContactEntry(JANE, "Jáne Döe", "Site 14 foreman"),
        ContactEntry("61299990000", "Jáne Döe", "Site 14 foreman"),
        ContactEntry(BOB, "Bob Builder", ""),
        ContactEntry("61412345678", "Uri Number", ""),
    ]
    assert book.unreadable == [
        Unreadable(15, "the card has no TEL (phone number)"),
        Unreadable(19, "'zzz' is not a phone number"),
        Unreadable(29, "the card has no END:VCARD"),
    ]


@given(st.binary(max_size=300))
def test_any_bytes_give_entries_or_a_reason_never_a_crash(data: bytes) -> None:
    try:
        book = read_contacts(data, "AU")
    except ContactsFileError:
        return
    for entry in book.entries:
        assert entry.number.isdigit()
        assert entry.name


@given(st.text(max_size=200))
def test_any_text_as_a_vcard_never_crashes(body: str) -> None:
    with contextlib.suppress(ContactsFileError):
        read_contacts(f"BEGIN:VCARD\n{body}\nEND:VCARD\n".encode(), "AU")
