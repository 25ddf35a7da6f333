"""Reading what the gateway pushes (pure): every documented shape, the operator's own names,
and nothing but an SMS or a ValueError for any input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.models import InboundSms
from smsbridge.provider.push import read_mo_push

NOW = 1_796_000_000.0


def test_the_get_shape() -> None:
    sms = read_mo_push(
        {
            "MOMessageId": "m1",
            "MTMessageId": "o1",
            "timestamp": "1796000000",
            "from": "61409560857",
            "to": "61411001001",
            "text": "hi",
        },
        NOW,
    )
    assert (sms.document_id, sms.origin_document_id, sms.timestamp) == ("m1", "o1", 1796000000)
    assert (sms.sender, sms.recipient, sms.text) == ("61409560857", "61411001001", "hi")


def test_the_json_shape_with_its_misspelt_outbound_id_and_an_iso_time() -> None:
    sms = read_mo_push(
        {
            "id": "m2",
            "from": "61409560857",
            "recipient": "61411001001",
            "text": "yes",
            "received": "2026-11-30T09:15:00+11:00",
            "mtMesasgeId": "o2",
        },
        NOW,
    )
    assert (sms.document_id, sms.origin_document_id) == ("m2", "o2")
    assert sms.timestamp == int(datetime(2026, 11, 29, 22, 15, tzinfo=UTC).timestamp())


def test_the_operators_own_names_are_read_when_configured() -> None:
    pushed = {"msgid": "m3", "sender": "61409560857", "body": "via a template", "line": "6141"}
    renames = {"msgid": "id", "sender": "from", "body": "text", "line": "to"}
    sms = read_mo_push(pushed, NOW, renames)
    assert (sms.document_id, sms.sender, sms.text, sms.recipient) == (
        "m3",
        "61409560857",
        "via a template",
        "6141",
    )
    assert sms.timestamp == int(NOW)  # no time given: when it reached us
    with pytest.raises(ValueError, match="`from`"):
        read_mo_push(pushed, NOW)  # without the names, no sender is found


@given(st.dictionaries(st.sampled_from(
    ["MOMessageId", "id", "from", "to", "text", "timestamp", "received", "MTMessageId", "x"]
), st.text(max_size=30), max_size=9))  # fmt: skip
def test_any_push_is_an_sms_or_a_clear_refusal(fields: dict[str, str]) -> None:
    refusal = ""
    try:
        sms: InboundSms | None = read_mo_push(fields, NOW)
    except ValueError as error:
        sms, refusal = None, str(error)
    if sms is None:
        assert refusal  # a reason the gateway's operator can read
    else:
        assert sms.sender
        assert sms.document_id
