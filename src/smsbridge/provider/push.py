"""What the gateway pushes to us, read. Pure.

A final delivery status, pushed to the URL registered with the gateway (its template tokens
MESSAGEIDP and STATUSP):

    https://<host>/provider/status/<SMSBRIDGE_PUSH__TOKEN>?id=MESSAGEIDP&status=STATUSP

The names `documentId`/`messageId` and `messageStatus` are read too, as query parameters, a
form or a JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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
