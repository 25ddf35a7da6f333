"""`/sms` argument parsing and time resolution: pure, so tested hard."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.ratelimit import RateLimiter
from smsbridge.slash.arguments import (
    CONTACT_USAGE,
    ContactArgs,
    HelpArgs,
    HistoryArgs,
    SendArgs,
    SendToNameArgs,
    StatusArgs,
    parse_command,
    resolve_since,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 23:00 in Sydney (UTC+11 in summer)
SYDNEY = ZoneInfo("Australia/Sydney")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("history 2h", HistoryArgs("2h")),
        ("HISTORY 2h", HistoryArgs("2h")),
        (
            "history since:2h from:0409560857 limit:5",
            HistoryArgs("2h", sender="61409560857", limit=5),
        ),
        ("history since 3d", HistoryArgs("3d")),
        (
            "history 2026-11-30 09:00 from 0409 560 857 to +61 411 001 001 limit 50",
            HistoryArgs("2026-11-30 09:00", "61409560857", "61411001001", 50),
        ),
        ("history 2026-11-30T09:00+10:00", HistoryArgs("2026-11-30T09:00+10:00")),
        ("status", StatusArgs()),
        ("", HelpArgs()),
        ("help", HelpArgs()),
    ],
)
def test_parse(text: str, parsed: object) -> None:
    assert parse_command(text, "AU") == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("history", "needs a time"),
        ("history from 0409560857", "needs a time"),
        ("history 2h from", "`from` needs a value"),
        ("history 2h from 1 from 2", "given twice"),
        ("history 2h limit 0", "from 1 to 100"),
        ("history 2h limit 101", "from 1 to 100"),
        ("history 2h to sales", "is not a phone number"),
        ("status now", "takes no arguments"),
        ("fetch 0409 hi", "I don't know `fetch`"),
        ("send", "/sms send <number> <text>"),
        ("send 0409560857", "/sms send <number> <text>"),
        ("send 0409 hello", "is not a possible phone number"),
        ("contact add 0409560857", "/sms contact add <number> <name>"),
        ("contact list everything", "/sms contact add <number> <name>"),
    ],
)
def test_parse_problems_become_help_with_the_reason(text: str, problem: str) -> None:
    parsed = parse_command(text, "AU")
    assert isinstance(parsed, HelpArgs)
    assert parsed.problem is not None
    assert problem in parsed.problem


def test_numbers_use_the_default_region() -> None:
    assert parse_command("history 1h from 07700 900123", "GB") == HistoryArgs(
        "1h", sender="447700900123"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW.timestamp() - 7200),
        ("30m", NOW.timestamp() - 1800),
        ("45 minutes", NOW.timestamp() - 2700),
        ("3d", NOW.timestamp() - 3 * 86400),
        ("1w", NOW.timestamp() - 7 * 86400),
        ("today", datetime(2026, 11, 30, 0, 0, tzinfo=SYDNEY).timestamp()),
        ("yesterday", datetime(2026, 11, 29, 0, 0, tzinfo=SYDNEY).timestamp()),
        ("2026-11-30", datetime(2026, 11, 30, 0, 0, tzinfo=SYDNEY).timestamp()),
        ("2026-11-30T09:00", datetime(2026, 11, 30, 9, 0, tzinfo=SYDNEY).timestamp()),
        ("2026-11-30 09:00", datetime(2026, 11, 30, 9, 0, tzinfo=SYDNEY).timestamp()),
        ("2026-11-30T09:00Z", datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()),
        ("2026-11-30T09:00+10:00", datetime(2026, 11, 29, 23, 0, tzinfo=UTC).timestamp()),
        ("1795900000", 1795900000),
    ],
)
def test_resolve_since(text: str, expected: float) -> None:
    assert resolve_since(text, NOW, SYDNEY) == int(expected)


def test_today_follows_the_users_zone_not_utc() -> None:
    # At 12:00 UTC it is 23:00 on the 30th in Sydney and 07:00 on the 30th in New York.
    new_york = resolve_since("today", NOW, ZoneInfo("America/New_York"))
    assert new_york == int(
        datetime(2026, 11, 30, 0, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    )
    assert new_york != resolve_since("today", NOW, SYDNEY)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("5x", "the unit must be"),
        ("tomorrow", "can't read"),
        ("2027-01-01", "in the future"),
        ("2026-13-45", "can't read"),
        ("-2h", "can't read"),
    ],
)
def test_resolve_since_problems(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        resolve_since(text, NOW, SYDNEY)


@given(st.text(max_size=120))
def test_parse_never_raises(text: str) -> None:
    assert isinstance(parse_command(text, "AU"), HistoryArgs | StatusArgs | HelpArgs)


@given(st.text(max_size=60))
def test_resolve_since_raises_only_value_error_and_never_returns_the_future(text: str) -> None:
    try:
        moment = resolve_since(text, NOW, SYDNEY)
    except ValueError:
        return
    assert 0 <= moment <= NOW.timestamp()


def test_rate_limiter_slides() -> None:
    clock = [0.0]
    limiter = RateLimiter(limit=2, window=60, clock=lambda: clock[0])
    assert limiter.allow("U1")
    assert limiter.allow("U1")
    assert not limiter.allow("U1")
    assert limiter.allow("U2")  # per user
    assert limiter.retry_in("U1") == 60
    clock[0] = 60.0
    assert limiter.allow("U1")


def test_send_keeps_the_text_as_typed_and_reads_the_numbers() -> None:
    parsed = parse_command("send 0409560857 Your parcel  is here\nat the desk", "AU")
    assert parsed == SendArgs(
        number="61409560857", line=None, text="Your parcel  is here\nat the desk"
    )
    chosen = parse_command("send +61409560857 from 0411001001 hi", "AU")
    assert chosen == SendArgs(number="61409560857", line="61411001001", text="hi")


def test_send_to_a_word_is_a_name_for_the_contact_book() -> None:
    parsed = parse_command("send Jane Doe from 0411001001 Your  parcel", "AU")
    assert parsed == SendToNameArgs("Jane Doe from 0411001001 Your  parcel")


def test_contact_commands_read_the_number_and_the_whole_name() -> None:
    # the number is one word, as in /sms send: a spaced number is a short one and a name
    assert parse_command("contact add 0409 560 857 x", "AU") == HelpArgs(
        "'0409' is not a possible phone number. " + CONTACT_USAGE
    )
    assert parse_command("contact add 0409560857 Jane   van Doe", "AU") == ContactArgs(
        "add", "61409560857", "Jane van Doe"
    )
    assert parse_command("contact remove +61409560857", "AU") == ContactArgs(
        "remove", "61409560857"
    )
    assert parse_command("contacts list", "AU") == ContactArgs("list")
