"""Sending one SMS through the real ProviderClient to the provider stand-in's `sendSingle2`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from conftest import PASSWORD, USERNAME, Served
from smsbridge.errors import MalformedPageError, ProviderRejectedError, ProviderTransientError
from smsbridge.provider.client import ProviderClient, parse_sent
from smsbridge.sim.provider import Account, Fault

CUSTOMER, LINE = "61409560857", "61411001001"


@pytest.fixture
async def client(served: Served) -> AsyncIterator[ProviderClient]:
    provider = ProviderClient(served.provider_url, USERNAME, SecretStr(PASSWORD), timeout=5)
    yield provider
    await provider.aclose()


async def test_a_sent_sms_gets_the_providers_id(served: Served, client: ProviderClient) -> None:
    document_id = await client.send(CUSTOMER, "See you at 10 & not later", LINE)
    [sent] = served.provider.sent
    assert sent.document_id == document_id
    assert (sent.recipient, sent.sender, sent.text) == (CUSTOMER, LINE, "See you at 10 & not later")


async def test_the_customers_answer_carries_the_sent_id_as_its_origin(
    served: Served, client: ProviderClient
) -> None:
    document_id = await client.send(CUSTOMER, "Still on for 10?", LINE)
    answer = served.provider.reply_to(served.provider.sent[0], "yes")
    assert answer.origin == document_id
    assert (answer.sender, answer.recipient) == (CUSTOMER, LINE)
    page = await client.fetch_page(answer.timestamp - 1)
    assert page.messages[-1].origin_document_id == document_id


async def test_out_of_credit_is_a_rejection_that_says_so(
    served: Served, client: ProviderClient
) -> None:
    served.provider.accounts[USERNAME] = Account(PASSWORD, credit=0)
    with pytest.raises(ProviderRejectedError) as caught:
        await client.send(CUSTOMER, "hello", LINE)
    assert caught.value.status == 320
    assert "out of credit" in str(caught.value)
    assert "Top up" in str(caught.value)
    assert served.provider.sent == []


async def test_bad_credentials_refuse_the_send(served: Served) -> None:
    wrong = ProviderClient(served.provider_url, USERNAME, SecretStr("wrong"), timeout=5)
    try:
        with pytest.raises(ProviderRejectedError) as caught:
            await wrong.send(CUSTOMER, "hello", LINE)
    finally:
        await wrong.aclose()
    assert caught.value.status == 3


@pytest.mark.parametrize("fault", [Fault.HTTP_500, Fault.STATUS_9999])
async def test_provider_trouble_while_sending_is_transient(
    served: Served, client: ProviderClient, fault: Fault
) -> None:
    served.provider.inject(fault)
    with pytest.raises(ProviderTransientError):
        await client.send(CUSTOMER, "hello", LINE)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 0, "documentId": "51750a01e4b0d1406c9c5fdb"},
        {"status": "0", "messageId": "51750a01e4b0d1406c9c5fdb"},
        {"status": 0, "id": "51750a01e4b0d1406c9c5fdb"},
    ],
)
def test_the_new_id_is_read_under_every_spelling(answer: dict[str, object]) -> None:
    assert parse_sent(json.dumps(answer).encode()) == "51750a01e4b0d1406c9c5fdb"


@pytest.mark.parametrize(
    "answer",
    [{"status": 0}, {"status": 0, "documentId": "a\nb"}, {"status": 0, "documentId": "x" * 100}],
)
def test_an_accepted_send_without_a_usable_id_is_malformed(answer: dict[str, object]) -> None:
    # The SMS may have gone out: the caller must treat it as in doubt, not as refused.
    with pytest.raises(MalformedPageError):
        parse_sent(json.dumps(answer).encode())


async def test_the_stand_in_takes_the_newer_json_shape_of_send_too(served: Served) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=served.provider_url) as http:
        answer = await http.post(
            "/services/rest/message/sendSingle2",
            json={"username": USERNAME, "password": PASSWORD, "recipient": CUSTOMER, "text": "hi"},
        )
    assert answer.json()["status"] == 0
    assert served.provider.sent[0].text == "hi"
