"""What the gateway pushes to us, read. Pure.

An inbound SMS (Push MO), in either documented shape:

    GET  /provider/push/<SMSBRIDGE_PUSH__TOKEN>?MOMessageId=…&MTMessageId=…&timestamp=…
         &from=…&to=…&text=…
    POST /provider/push/<SMSBRIDGE_PUSH__TOKEN>  {"id", "from", "recipient", "text", "received",
         "cref", "mtMessageId" (or the documented misspelling "mtMesasgeId")}

A final delivery status, pushed to the URL registered with the gateway (its template tokens
MESSAGEIDP and STATUSP):

    https://<host>/provider/status/<SMSBRIDGE_PUSH__TOKEN>?id=MESSAGEIDP&status=STATUSP

The names `documentId`/`messageId` and `messageStatus` are read too, as query parameters, a
form or a JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from smsbridge.models import InboundSms, InvalidSms, read_message

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def read_status_push(fields: Mapping[str, str]) -> tuple[str, int]:
    """(provider id, status) of a pushed status; ValueError with the reason when unreadable."""
    ident = next(
        (fields[name] for name in ("id", "documentId", "messageId") if fields.get(name)), ""
    ).strip()
    raw = next((fields[name] for name in ("status", "messageStatus") if fields.get(name)), "")
    if not _ID.match(ident):
        raise ValueError("`id` is missing or is not a message id")
    raw = raw.strip()
    if not raw.lstrip("-").isdigit() or len(raw) > 6:
        raise ValueError("`status` is missing or is not a status number")
    return ident, int(raw)


def read_mo_push(
    pushed: Mapping[str, str], now: float, renames: Mapping[str, str] | None = None
) -> InboundSms:
    """The SMS a push carries; ValueError with the reason when it is not one we can take.

    `renames` maps the operator's own parameter names (from a template they registered) to
    ours (`id`, `from`, `to`, `text`, `timestamp`, `mtMessageId`).
    """
    fields = dict(pushed)
    for theirs, ours in (renames or {}).items():
        if pushed.get(theirs):
            fields[ours] = pushed[theirs]

    def first(*names: str) -> str | None:
        return next((fields[name] for name in names if fields.get(name)), None)

    sender, text = first("from", "FROMP"), first("text", "TEXTP")
    if not sender:
        raise ValueError("`from` (the sender) is missing")
    if text is None:
        raise ValueError("`text` is missing")
    stamp = first("timestamp", "received", "RECEIVEDP")
    record = {
        "documentId": first("MOMessageId", "id", "messageId", "MESSAGEIDP"),
        "from": sender,
        "recipient": first("to", "recipient", "RECIPIENTP"),
        "originDocumentId": first("MTMessageId", "mtMessageId", "mtMesasgeId", "MTMESSAGEIDP"),
        "timestamp": int(now) if stamp is None else _epoch(stamp),
        "text": text,
    }
    if not record["documentId"]:
        raise ValueError("the message id (`MOMessageId` or `id`) is missing")
    sms = read_message(record)
    if isinstance(sms, InvalidSms):
        raise ValueError(sms.reason)
    return sms


def _epoch(value: str) -> int:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    text = value.strip()
    if text.isdigit() and len(text) <= 12:
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"`timestamp` is not a time ({text[:40]!r})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
