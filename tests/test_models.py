"""Every wire shape the provider's documentation shows parses into the same normalised model."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.errors import MalformedPageError, ProviderRejectedError, ProviderTransientError
from smsbridge.provider.client import parse_page


def page(*messages: object, **fields: object) -> bytes:
    return json.dumps({"status": 0, "messages": list(messages), **fields}).encode()


def test_seed_shape_with_integer_ids_and_numbers() -> None:
    body = page(
        {
            "from": 61409560857,
            "recipient": 61411001001,
            "documentId": 12345,
            "originDocumentId": 533221,
            "timestamp": 1362461321,
            "text": "This is a server side message",
        },
        newestMessageTimestamp=123458,
        hasMoreMessages=False,
    )
    sms = parse_page(body).messages[0]
    assert (sms.sender, sms.recipient, sms.document_id, sms.origin_document_id) == (
        "61409560857",
        "61411001001",
        "12345",
        "533221",
    )
    assert sms.timestamp == 1362461321


def test_docs_shape_with_hex_string_ids() -> None:
    body = page(
        {
            "documentId": "51750a01e4b0d1406c9c5fdb",
            "text": " ggghhh",
            "timestamp": 1366624769,
            "from": "61555879987",
            "recipient": "61500079987",
            "originDocumentId": "517509fee4b0b1be3f128ef5",
        }
    )
    sms = parse_page(body).messages[0]
    assert sms.document_id == "51750a01e4b0d1406c9c5fdb"
    assert sms.origin_document_id == "517509fee4b0b1be3f128ef5"
    assert sms.text == " ggghhh"  # text is kept exactly, leading space included


@pytest.mark.parametrize("origin", [None, "", "  "], ids=["null", "empty", "blank"])
def test_origin_null_or_empty_means_not_a_reply(origin: object) -> None:
    body = page(
        {"from": "61", "documentId": "a1", "timestamp": 1, "text": "x", "originDocumentId": origin}
    )
    assert parse_page(body).messages[0].origin_document_id is None


def test_optional_fields_absent() -> None:
    parsed = parse_page(page({"from": "61409", "documentId": 7, "timestamp": 5, "text": ""}))
    sms = parsed.messages[0]
    assert (sms.recipient, sms.origin_document_id, sms.text) == (None, None, "")
    assert parsed.has_more_messages is False  # absent in some versions: treated as false
    assert parsed.newest_message_timestamp is None


def test_null_text_is_empty_text() -> None:
    sms = parse_page(
        page({"from": "61", "documentId": "x", "timestamp": 5, "text": None})
    ).messages[0]
    assert sms.text == ""


def test_sibling_endpoint_field_name_is_accepted() -> None:
    body = json.dumps(
        {
            "status": 0,
            "incomingMessages": [{"from": "61", "documentId": "d", "timestamp": 1, "text": "t"}],
        }
    ).encode()
    assert parse_page(body).messages[0].document_id == "d"


def test_status_as_string_and_no_messages() -> None:
    assert parse_page(b'{"status": "0"}').messages == []


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (1, "bug"),
        (2, "SMSBRIDGE_PROVIDER__USERNAME"),
        (3, "SMSBRIDGE_PROVIDER__PASSWORD"),
        (4, "unblock"),
        (200, "SMSBRIDGE_PROVIDER__USERNAME"),
        (220, "Activate"),
    ],
)
def test_rejection_statuses_name_the_fix(status: int, fix: str) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        parse_page(json.dumps({"status": status}).encode())
    assert caught.value.status == status
    assert fix in str(caught.value)


def test_status_9999_is_transient() -> None:
    with pytest.raises(ProviderTransientError, match="9999"):
        parse_page(b'{"status": 9999}')


@pytest.mark.parametrize(
    "body",
    [
        b"{ newestMessageTimestamp = 123458 , messages = [",  # the seed's pseudo-JSON
        b'{"status": 0, "messages": {"not": "a list"}}',
        b'{"messages": []}',
        b"[1, 2, 3]",
        b"\xff\xfe",
        b"",
    ],
    ids=[
        "pseudo-json",
        "messages-object",
        "no-status",
        "array",
        "binary",
        "empty",
    ],
)
def test_malformed_bodies_are_transient_errors_not_crashes(body: bytes) -> None:
    with pytest.raises(MalformedPageError):
        parse_page(body)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parser_never_crashes_on_arbitrary_bodies(body: bytes) -> None:
    with contextlib.suppress(MalformedPageError, ProviderTransientError, ProviderRejectedError):
        parse_page(body)


GOOD = {"from": "61409560857", "documentId": "good1", "timestamp": 1_700_000_000, "text": "hi"}


# Surrogates included: JSON can escape one half of a pair (`"\\ud83d"`), and gateways do.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)


@given(ANY_TEXT)
def test_any_sms_text_is_read_as_text_utf8_can_carry_and_good_text_is_kept_as_sent(
    text: str,
) -> None:
    record = {"from": "61409560857", "documentId": "a", "timestamp": 1, "text": text}
    [sms] = parse_page(page(record)).messages  # ASCII JSON: every half-pair as an escape
    sms.text.encode("utf-8")  # what the database, Slack's JSON and the logs need
    assert "\x00" not in sms.text  # which PostgreSQL refuses in text
    if not any("\ud800" <= char <= "\udfff" or char == "\x00" for char in text):
        assert sms.text == text


def test_half_an_emoji_becomes_the_replacement_character_and_a_whole_one_stays() -> None:
    body = b'{"status": 0, "messages": [{"from": "61", "documentId": "a", "timestamp": 1,'
    body += b' "text": "late \\ud83d / on time \\ud83d\\ude00"}]}'
    [sms] = parse_page(body).messages
    assert sms.text == "late \ufffd / on time \U0001f600"


def test_an_invalid_record_holding_half_an_emoji_is_kept_in_text_utf8_can_carry() -> None:
    bad = {"from": True, "documentId": "a", "timestamp": 1, "text": "late \ud83d"}
    parsed = parse_page(page(GOOD, bad))
    assert [sms.document_id for sms in parsed.messages] == ["good1"]
    [invalid] = parsed.invalid
    invalid.raw.encode("utf-8")
    assert "late \ufffd" in invalid.raw


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"from": "61", "text": "no id", "timestamp": 1}, "documentId"),
        ({"from": "61", "documentId": "a", "timestamp": "soon"}, "timestamp"),
        ({"from": True, "documentId": "a", "timestamp": 1}, "from"),
        ({"from": "61", "documentId": "x" * 10_000, "timestamp": 1}, "documentId"),
        ({"from": "61", "documentId": "a", "timestamp": 1_700_000_000.5}, "timestamp"),
        ({"from": "6" * 200, "documentId": "a", "timestamp": 1}, "from"),
        ({"from": "61\n\x1b[31mFAKE", "documentId": "a", "timestamp": 1}, "from"),
        ({"from": "61", "recipient": "6\r\n1", "documentId": "a", "timestamp": 1}, "recipient"),
        ({"from": "61", "documentId": "a\nb", "timestamp": 1}, "documentId"),
        ({"from": "61", "documentId": "a", "timestamp": 10**15}, "timestamp"),
        ({"from": "61", "documentId": "a", "timestamp": 1, "text": {"x": 1}}, "text"),
        ("not an object", "record"),
    ],
    ids=[
        "no-id",
        "word-timestamp",
        "bool-sender",
        "10kb-id",
        "fractional-timestamp",
        "absurd-sender",
        "control-characters-in-sender",
        "newline-in-recipient",
        "newline-in-id",
        "timestamp-beyond-year-9999",
        "object-text",
        "string-record",
    ],
)
def test_one_bad_record_is_kept_as_invalid_and_the_good_ones_are_read(
    bad: object, field: str
) -> None:
    parsed = parse_page(page(GOOD, bad, {**GOOD, "documentId": "good2"}))
    assert [sms.document_id for sms in parsed.messages] == ["good1", "good2"]
    [invalid] = parsed.invalid
    assert invalid.reason.startswith(field)
    assert json.loads(invalid.raw) == bad  # the raw record, exactly, for a person to look at
    # the reason names the field, never the hostile value itself
    assert "FAKE" not in invalid.reason
    assert "xxxxxxxx" not in invalid.reason


def test_an_invalid_record_keeps_its_usable_second_for_the_cursor() -> None:
    parsed = parse_page(page({"from": "61", "documentId": "a", "timestamp": 1_700_000_000.7}))
    assert parsed.invalid[0].timestamp == 1_700_000_000
    assert parsed.timestamps == [1_700_000_000]


def test_the_same_bad_record_has_the_same_key_and_its_raw_json_is_bounded() -> None:
    bad = {"from": "61", "documentId": "x" * 100_000, "timestamp": 1}
    first, second = parse_page(page(bad)).invalid[0], parse_page(page(bad)).invalid[0]
    assert first.key == second.key
    assert len(first.key) <= 64
    assert len(first.raw) < 17_000
    assert first.raw.endswith("more characters cut)")


def test_a_page_with_more_messages_than_a_page_holds_is_refused_whole() -> None:
    records = [{**GOOD, "documentId": f"id{i}"} for i in range(101)]
    with pytest.raises(MalformedPageError, match="101 messages"):
        parse_page(page(*records))


def test_error_messages_never_quote_the_body() -> None:
    # a gateway error page that echoes our form would otherwise put the password in a log
    body = b"<html>password=demo password &amp; more</html>"
    with pytest.raises(MalformedPageError) as caught:
        parse_page(body)
    assert "password" not in str(caught.value)
