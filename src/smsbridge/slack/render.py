"""Turn one SMS into a Slack message: fallback text, blocks and metadata. Pure.

Everything that came from the SMS is escaped for Slack's mrkdwn (`&`, `<`, `>`), so an SMS
can neither mention anyone (`<!channel>`, `<@U123>`) nor fake a link (`<https://x|bank>`).
The metadata carries ids only: it is visible to every app in the workspace.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from smsbridge.models import InboundSms

EVENT_TYPE = "sms_received"
SECTION_LIMIT = 3000  # Slack's limit for a section's text
BLOCK_LIMIT = 50  # Slack's limit of blocks per message
FALLBACK_PREVIEW = 300  # characters of the SMS in the notification text
# The longest real SMS (255 concatenated parts of 153 characters) is under 40,000 characters;
# anything longer is cut before rendering, so a hostile text cannot hold the event loop.
MAX_TEXT = 40_000


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]


def escape(text: str) -> str:
    """Escape the three characters that Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@functools.lru_cache(maxsize=4096)  # the same few numbers again and again; parsing is slow
def format_number(digits: str | None) -> str:
    """A phone number in international format for people: 61409560857 -> +61 409 560 857."""
    if not digits:
        return "unknown"
    if not digits.isdigit():
        return escape(digits)  # alphanumeric sender ids exist; show them as they are
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return "+" + digits
    if not phonenumbers.is_possible_number(number):
        return "+" + digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def person(digits: str | None, name: str | None = None) -> str:
    """Who a number is, for Slack: "Jane Doe (+61 409 560 857)" when the contact book knows
    them, else the number alone. Names come from people, so they are escaped like SMS text."""
    number = format_number(digits)
    return f"{escape(name)} ({number})" if name else number


def slack_date(timestamp: int) -> str:
    """Slack shows this in each reader's own time zone; the fallback is UTC."""
    fallback = _utc_minute(timestamp // 60)
    if fallback is None:  # not a time any calendar shows
        return f"timestamp {int(timestamp)}"
    return f"<!date^{timestamp}^{{date_short_pretty}} at {{time}}|{fallback}>"


@functools.lru_cache(maxsize=1024)  # a backlog's SMS share their minutes; strftime is slow
def _utc_minute(minute: int) -> str | None:
    try:
        return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return None


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Cut `text` into pieces whose escaped form fits `limit`; the pieces join back to `text`.

    A cut prefers the last whitespace inside the window so words stay whole.
    """
    if len(escape(text)) <= limit:  # nearly every SMS: one piece
        return [text] if text else []
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end, size = start, 0
        while end < len(text):
            width = len(escape(text[end]))
            if size + width > limit:
                break
            size += width
            end += 1
        if end < len(text):
            space = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if space > start:
                end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def bridge_message(
    text: str, event_type: str, payload: dict[str, Any] | None = None
) -> SlackMessage:
    """A message of the bridge's own (a note, a status, a conversation's parent): one section
    of mrkdwn the caller has made safe, tagged so it is never taken for a bridged SMS."""
    return SlackMessage(
        text=text,
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        metadata={"event_type": event_type, "event_payload": payload or {}},
    )


def metadata(sms: InboundSms) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "document_id": sms.document_id,
            "origin_document_id": sms.origin_document_id or "",
        },
    }


def render(
    sms: InboundSms,
    mention: str | None = None,
    note: str | None = None,
    name: str | None = None,
) -> SlackMessage:
    """The Slack message for one SMS. `mention` is ours (an alert), so it is not escaped;
    `note` is ours too (an opt-out), shown small under the text; `name` is the sender's name
    in the contact book."""
    sender = person(sms.sender, name)
    header = f":speech_balloon: *{sender}*"
    if sms.recipient:
        header += f" → {format_number(sms.recipient)}"
    header += f" · {slack_date(sms.timestamp)}"
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": header}]}
    ]
    if mention:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    raw_pieces = split_text(sms.text[:MAX_TEXT])
    room = BLOCK_LIMIT - len(blocks)
    if len(raw_pieces) > room or len(sms.text) > MAX_TEXT:
        # Longer than any real SMS (or escaping made it so): show what fits, say what does not.
        raw_pieces = raw_pieces[: room - 1]
        dropped = len(sms.text) - sum(len(piece) for piece in raw_pieces)
        notes = [f"[{dropped} more characters not shown]"]
    else:
        notes = []
    pieces = [escape(piece) for piece in raw_pieces] or ["_(empty message)_"]
    for piece in [*pieces, *notes]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    preview = sms.text if len(sms.text) <= FALLBACK_PREVIEW else sms.text[:FALLBACK_PREVIEW] + "…"
    fallback = f"SMS from {sender}: {escape(preview) or '(empty message)'}"
    if mention:
        fallback = f"{mention} {fallback}"
    return SlackMessage(text=fallback, blocks=blocks, metadata=metadata(sms))
