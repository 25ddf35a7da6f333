"""ProviderClient: fetch one page of inbound SMS, map the provider's answer to a Page or an error.

The password travels in a POST form body, never in a URL (URLs end up in proxy and access logs).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from smsbridge.errors import (
    MalformedPageError,
    ProviderRejectedError,
    ProviderTransientError,
)
from smsbridge.models import Page

MESSAGES_PATH = "/services/rest/user/messages"

# status -> (meaning, what the operator should do). 9999 is transient and handled apart.
REJECTIONS: dict[int, tuple[str, str]] = {
    1: ("a required parameter is missing", "This is a bug in smsbridge; please report it."),
    2: (
        "a parameter value is invalid",
        "Check SMSBRIDGE_PROVIDER__USERNAME (no spaces) and that the clock of this host is right.",
    ),
    3: (
        "authentication failed",
        "Check SMSBRIDGE_PROVIDER__USERNAME and SMSBRIDGE_PROVIDER__PASSWORD.",
    ),
    4: ("the account is blocked", "Contact the SMS provider to unblock the account."),
    200: (
        "the user does not exist",
        "Check SMSBRIDGE_PROVIDER__USERNAME (e.g. 1234321@reseller).",
    ),
    220: (
        "the user account needs to be activated",
        "Activate the account with the SMS provider.",
    ),
}
INTERNAL_ERROR = 9999


class ProviderClient:
    """Talks to the provider's messages endpoint over one pooled httpx.AsyncClient."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "smsbridge"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch_page(self, since: int) -> Page:
        """One page of messages with timestamps from `since` (in the provider's reading of it)."""
        form = {
            "username": self._username,
            "password": self._password.get_secret_value(),
            "since": str(since),
        }
        try:
            response = await self._http.post(MESSAGES_PATH, data=form)
        except httpx.TimeoutException as error:
            raise ProviderTransientError(
                f"SMS provider timed out ({type(error).__name__})"
            ) from None
        except httpx.TransportError as error:
            raise ProviderTransientError(f"cannot reach the SMS provider: {error}") from None
        if response.status_code >= 400:
            raise ProviderTransientError(f"SMS provider answered HTTP {response.status_code}")
        return parse_page(response.content)


def parse_page(body: bytes) -> Page:
    """The documented JSON page, or the error its status stands for."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPageError(
            f"SMS provider sent a body that is not JSON: {body[:80]!r}"
        ) from None
    if not isinstance(document, dict):
        raise MalformedPageError(f"SMS provider sent JSON that is not an object: {body[:80]!r}")
    status = document.get("status")
    if isinstance(status, str) and status.strip().lstrip("-").isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool):
        raise MalformedPageError(f"SMS provider sent a page without a status: {body[:80]!r}")
    if status == INTERNAL_ERROR:
        raise ProviderTransientError("SMS provider reported an internal error (status 9999)")
    if status != 0:
        meaning, fix = REJECTIONS.get(
            status, ("an undocumented error", "Contact the SMS provider if this persists.")
        )
        raise ProviderRejectedError(status, meaning, fix)
    try:
        return Page.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedPageError(
            f"SMS provider sent a page we cannot read ({where}: {first['msg']}); "
            "none of its messages were taken, the cursor stays where it was"
        ) from None
