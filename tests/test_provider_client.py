"""The provider client over real HTTP against the stand-in: shapes, statuses, faults, secrecy."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr

from conftest import PASSWORD, USERNAME, Served
from smsbridge.errors import MalformedPageError, ProviderRejectedError, ProviderTransientError
from smsbridge.provider.client import ProviderClient
from smsbridge.sim.provider import Account, Fault, ProviderSim, SimSms


@contextlib.asynccontextmanager
async def client(
    served: Served, password: str = PASSWORD, username: str = USERNAME, http_timeout: float = 5
) -> AsyncIterator[ProviderClient]:
    provider = ProviderClient(
        served.provider_url, username, SecretStr(password), timeout=http_timeout
    )
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_password_goes_in_the_post_body_never_the_url(served: Served) -> None:
    async with client(served) as provider:
        await provider.fetch_page(0)
    request = served.provider.requests[-1]
    assert request["method"] == "POST"
    assert "password" not in request["url"]
    assert request["username"] == USERNAME  # the password with spaces and & decoded intact


@pytest.mark.parametrize(
    ("integer_ids", "numeric_numbers"),
    [(False, False), (True, True)],
    ids=["hex-strings", "integers"],
)
async def test_both_wire_types_read_the_same(
    served: Served, integer_ids: bool, numeric_numbers: bool
) -> None:
    served.provider.integer_ids = integer_ids
    served.provider.numeric_numbers = numeric_numbers
    sent = served.provider.add("61409560857", "hi", origin=served.provider.new_id(), timestamp=100)
    async with client(served) as provider:
        page = await provider.fetch_page(0)
    sms = page.messages[0]
    assert (sms.document_id, sms.sender, sms.recipient, sms.origin_document_id) == (
        sent.document_id,
        "61409560857",
        "61411001001",
        sent.origin,
    )


async def test_pages_hold_at_most_100_oldest_first(served: Served) -> None:
    for second in range(150):
        served.provider.add("61409560857", f"m{second}", timestamp=1000 + second)
    async with client(served) as provider:
        page = await provider.fetch_page(1000)
    assert len(page.messages) == 100
    assert page.has_more_messages is True
    assert [m.timestamp for m in page.messages] == sorted(m.timestamp for m in page.messages)


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        (lambda s: None, 3),  # wrong password
        (lambda s: s.accounts.update({USERNAME: Account(PASSWORD, blocked=True)}), 4),
        (lambda s: s.accounts.update({USERNAME: Account(PASSWORD, active=False)}), 220),
    ],
    ids=["auth-failed", "blocked", "not-activated"],
)
async def test_account_problems_are_rejections(
    served: Served, setup: Callable[[ProviderSim], None], status: int
) -> None:
    setup(served.provider)
    async with client(served, password="wrong" if status == 3 else PASSWORD) as provider:
        with pytest.raises(ProviderRejectedError) as caught:
            await provider.fetch_page(0)
    assert caught.value.status == status


async def test_unknown_user_is_status_200(served: Served) -> None:
    async with client(served, username="nobody@reseller") as provider:
        with pytest.raises(ProviderRejectedError) as caught:
            await provider.fetch_page(0)
    assert caught.value.status == 200
    assert "SMSBRIDGE_PROVIDER__USERNAME" in caught.value.fix


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (Fault.HTTP_500, ProviderTransientError, "HTTP 500"),
        (Fault.HTTP_503, ProviderTransientError, "HTTP 503"),
        (Fault.STATUS_9999, ProviderTransientError, "9999"),
        (Fault.MALFORMED_JSON, MalformedPageError, "not JSON"),
        (Fault.TRUNCATED_JSON, MalformedPageError, "not JSON"),
        (Fault.SLOW, ProviderTransientError, "timed out"),
    ],
)
async def test_faults_are_transient_errors(
    served: Served, fault: Fault, error: type, words: str
) -> None:
    served.provider.add("61409560857", "hi")
    served.provider.slow_seconds = 1.0
    served.provider.inject(fault)
    async with client(served, http_timeout=0.3) as provider:
        with pytest.raises(error, match=words):
            await provider.fetch_page(0)


async def test_unreachable_provider_is_transient() -> None:
    provider = ProviderClient("http://127.0.0.1:9", USERNAME, SecretStr(PASSWORD), timeout=2)
    try:
        with pytest.raises(ProviderTransientError, match="cannot reach"):
            await provider.fetch_page(0)
    finally:
        await provider.aclose()


async def test_errors_never_contain_the_password(served: Served) -> None:
    async with client(served, password="hunter2 secret") as provider:
        with pytest.raises(ProviderRejectedError) as caught:
            await provider.fetch_page(0)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(provider.__dict__)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"username": USERNAME, "password": PASSWORD}, 1),  # since missing
        ({"username": USERNAME, "since": "5"}, 1),  # password missing
        ({"username": USERNAME, "password": PASSWORD, "since": "yesterday"}, 2),
        ({"username": "has space", "password": PASSWORD, "since": "5"}, 2),
        ({"username": USERNAME, "password": PASSWORD, "since": "5"}, 0),
    ],
    ids=["no-since", "no-password", "since-not-integer", "username-with-space", "ok"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_stand_in_validates_like_the_documented_endpoint(
    served: Served, params: dict[str, str], status: int, method: str
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=served.provider_url) as http:
        if method == "GET":
            response = await http.get("/services/rest/user/messages", params=params)
        else:
            response = await http.post("/services/rest/user/messages", data=params)
    assert response.json()["status"] == status


async def test_the_stand_in_capped_collection_forgets_the_oldest(served: Served) -> None:
    capped: deque[SimSms] = deque(maxlen=3)
    served.provider.messages = served.provider.inboxes[USERNAME] = capped
    for i in range(5):
        served.provider.add("61409560857", f"m{i}", timestamp=100 + i)
    async with client(served) as provider:
        page = await provider.fetch_page(0)
    assert [m.text for m in page.messages] == ["m2", "m3", "m4"]
