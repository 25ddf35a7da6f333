"""Pure data: the provider's page and messages as we understand them, and thread keys.

The provider's wire format varies between versions of its documentation (ids and numbers as
JSON numbers or strings, optional `recipient`, `originDocumentId` and `hasMoreMessages`), so the
models accept every documented shape and normalise it; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

PAGE_SIZE = 100
"""The provider returns at most this many messages per page."""


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


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=64)]
OptionalId = Annotated[str | None, BeforeValidator(_optional_id_text)]
Number = Annotated[str, BeforeValidator(_digits), Field(min_length=1, max_length=32)]


def _text(value: Any) -> Any:
    return "" if value is None else value


class InboundSms(BaseModel):
    """One inbound SMS as the messages endpoint reports it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    sender: Number = Field(alias="from")
    recipient: Annotated[str | None, BeforeValidator(lambda v: _digits(v) or None)] = None
    document_id: Id = Field(alias="documentId")
    origin_document_id: OptionalId = Field(default=None, alias="originDocumentId")
    timestamp: int = Field(ge=0)
    text: Annotated[str, BeforeValidator(_text)] = ""


class Page(BaseModel):
    """One answer of the messages endpoint with status 0."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    status: int
    messages: list[InboundSms] = Field(
        default_factory=list, validation_alias=AliasChoices("messages", "incomingMessages")
    )
    newest_message_timestamp: int | None = Field(default=None, alias="newestMessageTimestamp")
    has_more_messages: Annotated[bool, BeforeValidator(lambda v: bool(v))] = Field(
        default=False, alias="hasMoreMessages"
    )


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """All answers of one person to one outbound message share a Slack thread.

    SMS that answer no outbound message (`origin` is empty) group per sender until the
    conversation has been idle for the configured number of hours.
    """

    channel: str
    sender: str
    origin: str  # "" when the SMS answers no known outbound message
