"""Pure data: the provider's page and messages as we understand them, and thread keys.

The provider's wire format varies between versions of its documentation (ids and numbers as
JSON numbers or strings, optional `recipient`, `originDocumentId` and `hasMoreMessages`), so the
models accept every documented shape and normalise it; nothing here does I/O.

Each message of a page is read on its own: one record we cannot trust (a 10 KB id, a fractional
timestamp, a sender with control characters) becomes an `InvalidSms`, kept with its raw JSON and
the reason, and never holds up the good messages beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

PAGE_SIZE = 100
"""The provider returns at most this many messages per page."""

MAX_TIMESTAMP = 253_402_300_799
"""9999-12-31T23:59:59Z: a later stamp is not a time any clock or renderer can show."""

RAW_LIMIT = 16_384
"""Characters of an invalid record's raw JSON kept in the ledger."""


def _id_text(value: Any) -> Any:
    """Ids and phone numbers arrive as JSON numbers or strings; we keep them as stripped text."""
    if isinstance(value, bool):  # bool is an int in Python, but never a valid id
        raise ValueError("expected a number or a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return value


def _optional_id_text(value: Any) -> Any:
    """`originDocumentId` may be absent, null or empty when the SMS is not a reply."""
    value = _id_text(value)
    return value or None


def _digits(value: Any) -> Any:
    """Phone numbers: international format without `+`; tolerate a leading `+` or spaces."""
    value = _id_text(value)
    if isinstance(value, str):
        value = value.removeprefix("+").replace(" ", "")
    return value


# Ids and numbers reach logs, Slack metadata and database keys: a short, plain alphabet only
# (hex or decimal ids; international numbers, or alphanumeric sender ids such as "MyShop").
_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_NUMBER_PATTERN = r"^[A-Za-z0-9._-]{1,20}$"

_IdText = Annotated[str, Field(pattern=_ID_PATTERN)]
_NumberText = Annotated[str, Field(pattern=_NUMBER_PATTERN)]
Id = Annotated[_IdText, BeforeValidator(_id_text)]
OptionalId = Annotated[_IdText | None, BeforeValidator(_optional_id_text)]
Number = Annotated[_NumberText, BeforeValidator(_digits)]
OptionalNumber = Annotated[_NumberText | None, BeforeValidator(lambda v: _digits(v) or None)]


def _text(value: Any) -> Any:
    if value is None:
        return ""
    return well_formed(value) if isinstance(value, str) else value


def well_formed(text: str) -> str:
    """`text` with what no database can store replaced by U+FFFD (the replacement character):
    a lone UTF-16 surrogate, and NUL.

    A gateway that joins the parts of a long SMS one by one can split an emoji's surrogate pair
    between two parts and send each half as a JSON escape (`"\\ud83d"`). Python reads such a
    half into a str that UTF-8 cannot carry: the database, Slack's JSON and the logs all refuse
    it. PostgreSQL refuses NUL (`"\\u0000"`) in text. Either made an SMS's whole page fail to
    store, again at every poll, so no later SMS arrived either."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class InboundSms(BaseModel):
    """One inbound SMS as the messages endpoint reports it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    sender: Number = Field(alias="from")
    recipient: OptionalNumber = None
    document_id: Id = Field(alias="documentId")
    origin_document_id: OptionalId = Field(default=None, alias="originDocumentId")
    timestamp: int = Field(ge=0, le=MAX_TIMESTAMP)
    text: Annotated[str, BeforeValidator(_text)] = ""


@dataclass(frozen=True, slots=True)
class InvalidSms:
    """A record of a page that is not an SMS we can trust, kept so that a person can look."""

    key: str  # stable for the same record, so a record the gateway keeps sending is kept once
    raw: str  # the record as JSON, cut at RAW_LIMIT characters
    reason: str  # what is wrong, without the offending value
    timestamp: int | None  # its second, when it has a usable one: the cursor still counts it


class _Envelope(BaseModel):
    """One answer of the messages endpoint with status 0, messages not yet read."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    status: int
    messages: list[Any] = Field(
        default_factory=list, validation_alias=AliasChoices("messages", "incomingMessages")
    )
    newest_message_timestamp: int | None = Field(default=None, alias="newestMessageTimestamp")
    has_more_messages: Annotated[bool, BeforeValidator(lambda v: bool(v))] = Field(
        default=False, alias="hasMoreMessages"
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One answer of the messages endpoint with status 0, each message read on its own."""

    messages: list[InboundSms]
    invalid: list[InvalidSms] = field(default_factory=list)
    has_more_messages: bool = False
    newest_message_timestamp: int | None = None
    provider_time: float | None = None  # the provider's clock (its HTTP Date header)

    @property
    def size(self) -> int:
        """How many records the page held, readable or not."""
        return len(self.messages) + len(self.invalid)

    @property
    def timestamps(self) -> list[int]:
        """The second of every record that has one: what the cursor rules look at."""
        stamps = [sms.timestamp for sms in self.messages]
        stamps.extend(bad.timestamp for bad in self.invalid if bad.timestamp is not None)
        return stamps


def read_page(document: dict[str, Any]) -> Page:
    """A status-0 document as a Page. Raises ValidationError when the envelope is not a page."""
    envelope = _Envelope.model_validate(document)
    messages: list[InboundSms] = []
    invalid: list[InvalidSms] = []
    for record in envelope.messages:
        sms = read_message(record)
        if isinstance(sms, InboundSms):
            messages.append(sms)
        else:
            invalid.append(sms)
    return Page(
        messages=messages,
        invalid=invalid,
        has_more_messages=envelope.has_more_messages,
        newest_message_timestamp=envelope.newest_message_timestamp,
    )


def read_message(record: Any) -> InboundSms | InvalidSms:
    """One record of a page: an SMS, or the reason it is not one."""
    try:
        return InboundSms.model_validate(record)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        reason = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'record'}: "
            + (
                "holds characters or a length no id or number has"
                if problem["type"] == "string_pattern_mismatch"
                else problem["msg"]
            )
            for problem in problems[:3]
        )
    raw = well_formed(json.dumps(record, ensure_ascii=False, sort_keys=True, default=str))
    key = "invalid-" + hashlib.sha256(raw.encode()).hexdigest()[:40]
    if len(raw) > RAW_LIMIT:
        raw = raw[:RAW_LIMIT] + f"… ({len(raw) - RAW_LIMIT} more characters cut)"
    stamp = record.get("timestamp") if isinstance(record, dict) else None
    return InvalidSms(key=key, raw=raw, reason=reason, timestamp=_second_of(stamp))


def _second_of(value: Any) -> int | None:
    """The whole second of a timestamp that is roughly usable (1.5 -> 1), for the cursor."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP:
        return math.floor(value)
    return None


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """All answers of one person to one outbound message share a Slack thread.

    SMS that answer no outbound message (`origin` is empty) group per sender until the
    conversation has been idle for the configured number of hours.
    """

    channel: str
    sender: str
    origin: str  # "" when the SMS answers no known outbound message
