"""ProviderClient: fetch one page of inbound SMS, map the provider's answer to a Page or an error.

The password travels in a POST form body, never in a URL (URLs end up in proxy and access logs).
Every answer is bounded: the whole request (not each read) has a deadline, the body has a size
limit, and a page may not hold more messages than the provider's page size. Error messages never
quote the body: a gateway's error page may echo our form, password included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from smsbridge.config import ProviderSettings
from smsbridge.errors import (
    MalformedPageError,
    ProviderInDoubtError,
    ProviderRejectedError,
    ProviderTransientError,
)
from smsbridge.models import PAGE_SIZE, Page, read_page

MESSAGES_PATH = "/services/rest/user/messages"
SEND_PATH = "/services/rest/message/sendSingle2"
STATUS_PATH = "/services/rest/message/status"
TOO_SOON = -230  # asked for a status sooner than a second after sending
ALL_MESSAGES_PATH = "/services/rest/user/allMessages"
MAX_BODY = 4 * 1024 * 1024  # a page is 100 SMS; a few MB leaves room for long multi-part texts

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
OUT_OF_CREDIT = 320  # sending only
SEND_REJECTIONS: dict[int, tuple[str, str]] = {
    **REJECTIONS,
    OUT_OF_CREDIT: (
        "the account is out of credit",
        "Top up the account with the SMS provider; the SMS was not sent.",
    ),
}


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
        self._deadline = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "smsbridge"},
        )

    @classmethod
    def for_account(cls, settings: ProviderSettings) -> ProviderClient:
        """The client for one account's connection settings: the one place that reads them."""
        return cls(settings.url, settings.username, settings.password, timeout=settings.timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch_page(self, since: int) -> Page:
        """One page of messages with timestamps from `since` (in the provider's reading of it)."""
        date, body = await self._exchange(MESSAGES_PATH, {"since": str(since)})
        page = parse_page(body)
        return dataclasses.replace(page, provider_time=_http_date(date))

    async def send(self, recipient: str, text: str, sender: str | None) -> str:
        """Send one SMS (`sendSingle2`); returns the provider's id for it.

        `sender` is the line it goes out from (None: the provider's pool). Replies stay in the
        inbox for polling (`replyTo=log`), where they carry this id as `originDocumentId`.
        Raises ProviderInDoubtError when the SMS may have gone out although we have no answer
        (a timeout, a dropped connection, an answer without an id): sending it again could
        send it twice. Other transient errors mean it was not sent.
        """
        form = {"recipient": recipient, "text": text, "sender": sender or "", "replyTo": "log"}
        try:
            _, body = await self._exchange(SEND_PATH, form)
            return parse_sent(body)
        except MalformedPageError as error:
            raise ProviderInDoubtError(str(error)) from None
        except ProviderTransientError as error:
            if error.reached:
                raise ProviderInDoubtError(str(error)) from None
            raise

    async def message_status(self, document_id: str) -> int | None:
        """The delivery status of an SMS we sent, or None when the provider has none yet."""
        _, body = await self._exchange(STATUS_PATH, {"documentId": document_id})
        status, document = _status_of(body)
        if status == TOO_SOON:
            return None
        _raise_for(status, REJECTIONS)
        value = document.get("messageStatus")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    async def sent_since(self, since: int) -> list[tuple[str, str, str]]:
        """(id, recipient, text) of the SMS we sent from `since` on (`allMessages`), to find out
        whether a send that got no answer went out. One page: the caller asks from a moment
        shortly before its claim, so a page covers it."""
        _, body = await self._exchange(ALL_MESSAGES_PATH, {"since": str(since)})
        status, document = _status_of(body)
        _raise_for(status, REJECTIONS)
        outgoing = document.get("outgoingMessages")
        found: list[tuple[str, str, str]] = []
        for record in outgoing if isinstance(outgoing, list) else []:
            if not isinstance(record, dict):
                continue
            ident = record.get("documentId")
            # one version of the documentation spells it "recpipent"
            recipient = record.get("recipient", record.get("recpipent"))
            text = record.get("text")
            if isinstance(ident, int) and not isinstance(ident, bool):
                ident = str(ident)
            if isinstance(recipient, int) and not isinstance(recipient, bool):
                recipient = str(recipient)
            if isinstance(ident, str) and isinstance(recipient, str) and isinstance(text, str):
                found.append((ident, recipient.removeprefix("+"), text))
        return found

    async def _exchange(self, path: str, fields: dict[str, str]) -> tuple[str | None, bytes]:
        """POST our credentials and `fields` to `path`: (Date header, body), or an error."""
        form = {
            "username": self._username,
            "password": self._password.get_secret_value(),
            **fields,
        }
        try:
            # One deadline for the whole exchange: httpx's timeout is per read, so a body
            # dripped a byte at a time would otherwise hold the poll as long as the gateway likes.
            async with asyncio.timeout(self._deadline):
                status, date, body = await self._post(path, form)
        except TimeoutError:
            raise ProviderTransientError(
                f"SMS provider timed out (no whole answer within {self._deadline:g}s)",
                reached=True,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # never got our request
            raise ProviderTransientError(
                f"cannot reach the SMS provider ({type(error).__name__}: {str(error)[:200]})"
            ) from None
        except httpx.TimeoutException as error:
            raise ProviderTransientError(
                f"SMS provider timed out ({type(error).__name__})", reached=True
            ) from None
        except httpx.TransportError as error:
            raise ProviderTransientError(
                f"lost the SMS provider ({type(error).__name__}: {str(error)[:200]})",
                reached=True,
            ) from None
        if status >= 400:
            raise ProviderTransientError(f"SMS provider answered HTTP {status}")
        return date, body

    async def _post(self, path: str, form: dict[str, str]) -> tuple[int, str | None, bytes]:
        """Status, Date header and body, refusing a body over MAX_BODY as it arrives."""
        async with self._http.stream("POST", path, data=form) as response:
            if response.status_code >= 400:
                return response.status_code, None, b""  # the body may echo our form: unread
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise _too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY:
                    raise _too_large()
                chunks.append(chunk)
            return response.status_code, response.headers.get("date"), b"".join(chunks)


def _too_large() -> MalformedPageError:
    return MalformedPageError(
        f"SMS provider sent a body over {MAX_BODY // (1024 * 1024)} MB; a page of "
        f"{PAGE_SIZE} SMS is far smaller, so it was refused"
    )


def _http_date(value: str | None) -> float | None:
    """The provider's clock from its Date header, when it sends a readable one."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


def _status_of(body: bytes) -> tuple[int, dict[str, Any]]:
    """The answer's JSON object and its status; a body that is neither is malformed."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedPageError(
            f"SMS provider sent a body that is not JSON ({len(body)} bytes)"
        ) from None
    if not isinstance(document, dict):
        raise MalformedPageError(
            f"SMS provider sent JSON that is not an object ({type(document).__name__})"
        )
    status = document.get("status")
    if isinstance(status, str) and status.strip().lstrip("-").isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool):
        raise MalformedPageError("SMS provider sent a JSON object without a status")
    return status, document


def _raise_for(status: int, rejections: dict[int, tuple[str, str]]) -> None:
    if status == INTERNAL_ERROR:
        raise ProviderTransientError("SMS provider reported an internal error (status 9999)")
    if status != 0:
        meaning, fix = rejections.get(
            status, ("an undocumented error", "Contact the SMS provider if this persists.")
        )
        raise ProviderRejectedError(status, meaning, fix)


def parse_sent(body: bytes) -> str:
    """The new SMS's id from a `sendSingle2` answer, or the error its status stands for.

    The field names of this answer are not confirmed by the documentation, so every spelling
    seen in its versions is read.
    """
    status, document = _status_of(body)
    _raise_for(status, SEND_REJECTIONS)
    for name in ("documentId", "messageId", "id", "documentID"):
        value = document.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", value.strip()):
            return value.strip()
    raise MalformedPageError("SMS provider accepted the SMS but gave no id for it")


def parse_page(body: bytes) -> Page:
    """The documented JSON page, or the error its status stands for.

    The messages are read one by one (see `read_page`); only a body that is not the documented
    envelope, or one with more messages than a page holds, is refused whole.
    """
    status, document = _status_of(body)
    _raise_for(status, REJECTIONS)
    try:
        page = read_page(document)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedPageError(
            f"SMS provider sent a page we cannot read ({where}: {first['msg']}); "
            "none of its messages were taken, the cursor stays where it was"
        ) from None
    if page.size > PAGE_SIZE:
        raise MalformedPageError(
            f"SMS provider sent {page.size} messages in one page, more than the {PAGE_SIZE} a page "
            "holds; none of them were taken, the cursor stays where it was"
        )
    return page
