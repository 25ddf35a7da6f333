"""Rendering: nothing in an SMS can ping, link or format its way out of its box."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.models import MAX_TIMESTAMP, InboundSms
from smsbridge.slack.render import (
    BLOCK_LIMIT,
    MAX_TEXT,
    SECTION_LIMIT,
    SlackMessage,
    escape,
    format_number,
    render,
    slack_date,
    split_text,
)


def sms(text: str, **fields: object) -> InboundSms:
    values: dict[str, object] = {
        "from": "61409560857",
        "recipient": "61411001001",
        "documentId": "d1",
        "timestamp": 1_700_000_000,
        "text": text,
    }
    values.update(fields)
    return InboundSms.model_validate(values)


def all_texts(message: SlackMessage) -> list[str]:
    texts = [message.text]
    for block in message.blocks:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        else:
            texts.extend(element["text"] for element in block["elements"])
    return texts


@pytest.mark.parametrize(
    "attack",
    [
        "<!channel> pay now",
        "<!here>",
        "<@U123ABC> hi",
        "<#C0OPS>",
        "<https://evil.example|Your Bank>",
        "<!subteam^S1>",
    ],
)
def test_sms_cannot_mention_or_link(attack: str) -> None:
    message = render(sms(attack))
    for text in all_texts(message):
        # Our own markup is only the date token; no other Slack control sequence may appear.
        assert re.findall(r"<(?!!date\^)[^>]*>", text) == []
    assert escape(attack) in message.blocks[1]["text"]["text"]


def test_escape_covers_exactly_the_three_control_characters() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&amp;") == "&amp;amp;"  # an SMS that types an entity shows it literally


def test_header_formats_numbers_for_people_and_dates_for_each_reader() -> None:
    header = render(sms("hi")).blocks[0]["elements"][0]["text"]
    assert "+61 409 560 857" in header
    assert "+61 411 001 001" in header
    assert "<!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13 UTC>" in header


@pytest.mark.parametrize(
    ("digits", "shown"),
    [
        ("61409560857", "+61 409 560 857"),
        ("447700900123", "+44 7700 900123"),
        ("12", "+12"),
        (None, "unknown"),
        ("ACME", "ACME"),
    ],
)
def test_format_number(digits: str | None, shown: str) -> None:
    assert format_number(digits) == shown


def test_metadata_carries_ids_only() -> None:
    message = render(sms("secret text", originDocumentId="o9"))
    assert message.metadata == {
        "event_type": "sms_received",
        "event_payload": {"document_id": "d1", "origin_document_id": "o9"},
    }


def test_empty_sms_is_shown_as_empty() -> None:
    assert render(sms("")).blocks[1]["text"]["text"] == "_(empty message)_"


def test_emoji_and_unicode_survive() -> None:
    assert render(sms("Hello 😊 — ça va?")).blocks[1]["text"]["text"] == "Hello 😊 — ça va?"


def test_long_text_is_split_across_blocks_without_losing_a_character() -> None:
    text = ("word & <tag> " * 1200).strip()
    message = render(sms(text))
    sections = [b["text"]["text"] for b in message.blocks[1:]]
    assert len(sections) > 1
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    rebuilt = "".join(sections).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert rebuilt == text


def test_absurdly_long_text_stays_within_the_block_limit_and_says_what_is_cut() -> None:
    text = "x" * (SECTION_LIMIT * (BLOCK_LIMIT + 5))
    message = render(sms(text))
    assert len(message.blocks) <= BLOCK_LIMIT
    shown = "".join(b["text"]["text"] for b in message.blocks[1:-1])
    assert shown == "x" * MAX_TEXT
    assert (
        message.blocks[-1]["text"]["text"] == f"[{len(text) - MAX_TEXT} more characters not shown]"
    )


def test_text_that_escaping_makes_too_long_stays_within_the_block_limit() -> None:
    text = "&" * MAX_TEXT  # each & becomes &amp;: five times the room
    message = render(sms(text))
    assert len(message.blocks) == BLOCK_LIMIT
    assert message.blocks[-1]["text"]["text"].endswith("more characters not shown]")


def test_a_50_mb_text_renders_from_its_first_characters_only() -> None:
    message = render(sms("y" * 50_000_000))
    assert sum(len(b["text"]["text"]) for b in message.blocks[1:]) < MAX_TEXT + 100
    assert len(message.text) < 400


@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP))
def test_every_stamp_shows_its_own_utc_minute_as_the_fallback(timestamp: int) -> None:
    minute = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert slack_date(timestamp) == (
        f"<!date^{timestamp}^{{date_short_pretty}} at {{time}}|{minute}>"
    )


def test_a_timestamp_no_calendar_shows_renders_as_a_number() -> None:
    assert slack_date(10**15) == "timestamp 1000000000000000"


@given(st.text(max_size=9000), st.integers(min_value=5, max_value=400))
def test_split_text_pieces_join_back_and_fit(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(0 < len(escape(piece)) <= limit for piece in pieces)


@given(st.text(max_size=2000))
def test_rendered_sms_never_contains_an_unescaped_control_character(text: str) -> None:
    message = render(sms(text))
    for section in message.blocks[1:]:
        body = section["text"]["text"]
        assert "<" not in body
        assert ">" not in body
        assert re.sub(r"&(amp|lt|gt);", "", body).count("&") == 0
