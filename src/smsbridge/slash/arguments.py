"""Parse what people type after `/sms`. Pure: no I/O; time is resolved with a given now and zone.

/sms history <since> [from <number>] [to <line>] [limit <n>]
/sms history since:2h from:0409560857 limit:5
/sms send <number or contact name> [from <line>] <text>
/sms contact add <number> <name> | remove <number> | list
/sms status
/sms help
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from smsbridge.contacts_file import check_name
from smsbridge.numbers import normalise_number
from smsbridge.slack.render import escape

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
QUOTE_LIMIT = 40  # characters of what someone typed that an answer quotes back
_KEYS = ("since", "from", "to", "limit")
_UNITS = {
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_RELATIVE = re.compile(r"^(\d{1,6})\s*([a-z]+)$")


def quoted(text: str) -> str:
    """What the user typed, quoted back: short, escaped, as code."""
    shown = text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "…"
    return "`" + escape(shown.replace("`", "'")) + "`"


@dataclass(frozen=True, slots=True)
class HistoryArgs:
    since: str  # as typed; resolved later with the user's time zone
    sender: str | None = None  # normalised international digits
    line: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class StatusArgs:
    pass


@dataclass(frozen=True, slots=True)
class HelpArgs:
    problem: str | None = None  # why we are showing help, if the input was wrong


@dataclass(frozen=True, slots=True)
class SendArgs:
    number: str  # normalised international digits
    line: str | None  # the line to send from, when the person named one
    text: str  # as typed (Slack markup), spacing and line breaks kept


@dataclass(frozen=True, slots=True)
class SendToNameArgs:
    """`/sms send Jane Doe …`: the words after `send`, a contact's name first; which words are
    the name is known only against the contact book (`slash/recipients.py`)."""

    rest: str


@dataclass(frozen=True, slots=True)
class ContactArgs:
    action: str  # "add", "remove" or "list"
    number: str | None = None  # normalised international digits (add, remove)
    name: str | None = None  # (add)


CONTACT_USAGE = (
    "`/sms contact add <number> <name>` names a number for everyone in the bridge's channels, "
    "e.g. `/sms contact add 0409560857 Jane Doe`; `/sms contact remove <number>`; "
    "`/sms contact list`."
)

SEND_USAGE = (
    "`/sms send <number> <text>` sends an SMS from this channel's line and opens a thread for "
    "the conversation, e.g. `/sms send 0409560857 Your parcel is at the front desk`, or "
    "`/sms send Jane Doe Your parcel is at the front desk` for someone in the contact book. "
    "Write the number without spaces; add `from <line>` after it when the channel has several "
    "lines."
)
_SEND = re.compile(r"^\s*send(?:\s+(\S+))?(?:\s+from\s+(\S+))?(?:\s+(.*))?$", re.S | re.I)

Command = HistoryArgs | StatusArgs | HelpArgs | SendArgs | SendToNameArgs | ContactArgs


def parse_command(text: str, region: str) -> Command:
    """Never raises: anything it cannot read becomes HelpArgs with the reason."""
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return HelpArgs()
    verb, rest = words[0].lower(), words[1:]
    if verb == "send":
        return _send(text, region)
    if verb in ("contact", "contacts"):
        return _contact(rest, region)
    if verb == "status":
        return (
            StatusArgs()
            if not rest
            else HelpArgs(f"`status` takes no arguments (got {quoted(' '.join(rest))})")
        )
    if verb != "history":
        return HelpArgs(f"I don't know {quoted(words[0])}")
    try:
        return _history(rest, region)
    except ValueError as error:
        return HelpArgs(str(error))


def _send(text: str, region: str) -> SendArgs | SendToNameArgs | HelpArgs:
    match = _SEND.match(text)
    if match is not None and match.group(1) and any(ch.isalpha() for ch in match.group(1)):
        rest = text.strip()[len("send") :].strip()
        return SendToNameArgs(rest)  # a name, not a number: resolved against the book
    if match is None or not match.group(1) or not (match.group(3) or "").strip():
        return HelpArgs(SEND_USAGE)
    try:
        number = normalise_number(match.group(1), region)
        line = normalise_number(match.group(2), region) if match.group(2) else None
    except ValueError as error:
        return HelpArgs(f"{escape(str(error)[:200])}. {SEND_USAGE}")
    return SendArgs(number=number, line=line, text=match.group(3).strip())


def _contact(words: list[str], region: str) -> ContactArgs | HelpArgs:
    action = words[0].lower() if words else ""
    if action == "list" and len(words) == 1:
        return ContactArgs("list")
    if action in ("remove", "delete", "rm") and len(words) == 2:
        number = _typed_number(words[1], region)
        return number if isinstance(number, HelpArgs) else ContactArgs("remove", number)
    if action == "add" and len(words) >= 3:
        number = _typed_number(words[1], region)
        if isinstance(number, HelpArgs):
            return number
        try:
            name = check_name(" ".join(words[2:]))
        except ValueError as error:
            return HelpArgs(f"{escape(str(error))}. {CONTACT_USAGE}")
        return ContactArgs("add", number, name)
    return HelpArgs(CONTACT_USAGE)


def _typed_number(word: str, region: str) -> str | HelpArgs:
    try:
        return normalise_number(word, region)
    except ValueError as error:
        return HelpArgs(f"{escape(str(error)[:200])}. {CONTACT_USAGE}")


def _history(words: list[str], region: str) -> HistoryArgs:
    values: dict[str, list[str]] = {}
    key = "since"  # the first words, before any keyword, are the time
    for word in words:
        name, colon, value = word.partition(":")
        lowered = name.lower()
        if lowered in _KEYS and (colon or word.lower() == lowered):
            if values.get(lowered):
                raise ValueError(f"{quoted(lowered)} is given twice")
            key = lowered
            values.setdefault(key, [])
            if colon and value:
                values[key].append(value)
            continue
        values.setdefault(key, []).append(word)
    for name, parts in values.items():
        if not parts:
            raise ValueError(f"{quoted(name)} needs a value")
    since = " ".join(values.get("since", []))
    if not since:
        raise ValueError("history needs a time to start from, e.g. `/sms history 2h`")
    sender = _number(values, "from", region)
    line = _number(values, "to", region)
    limit = DEFAULT_LIMIT
    if "limit" in values:
        raw = " ".join(values["limit"])
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise ValueError(
                f"`limit` must be a whole number from 1 to {MAX_LIMIT} (got {quoted(raw)})"
            )
        limit = int(raw)
    return HistoryArgs(since=since, sender=sender, line=line, limit=limit)


def _number(values: dict[str, list[str]], key: str, region: str) -> str | None:
    if key not in values:
        return None
    try:
        return normalise_number(" ".join(values[key]), region)
    except ValueError as error:
        raise ValueError(f"`{key}`: {escape(str(error)[:200])}") from None


def resolve_since(text: str, now: datetime, zone: tzinfo) -> int:
    """Epoch seconds for `text`: epoch, ISO 8601, 30m/2h/3d/1w, today, yesterday.

    ISO times without an offset, `today` and `yesterday` are read in `zone` (the user's).
    Raises ValueError with a message for the person who typed it.
    """
    cleaned = text.strip().lower()
    local_now = now.astimezone(zone)
    if cleaned in ("today", "yesterday"):
        day = local_now.date() - timedelta(days=1 if cleaned == "yesterday" else 0)
        return int(datetime.combine(day, time(), tzinfo=zone).timestamp())
    if cleaned.isdigit() and 9 <= len(cleaned) <= 12:
        moment = int(cleaned)
    elif match := _RELATIVE.match(cleaned):
        count, unit = int(match.group(1)), match.group(2)
        if unit not in _UNITS:
            raise ValueError(
                f"{quoted(text)}: the unit must be m, h, d or w (e.g. 30m, 2h, 3d, 1w)"
            )
        moment = int(now.timestamp()) - count * _UNITS[unit]
    else:
        moment = _iso(text.strip(), zone)
    if moment > now.timestamp():
        raise ValueError(f"{quoted(text)} is in the future")
    return max(0, moment)


def _iso(text: str, zone: tzinfo) -> int:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            parsed = datetime.combine(date.fromisoformat(text), time())
        else:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValueError(
            f"I can't read {quoted(text)} as a time. Try `30m`, `2h`, `3d`, `1w`, `today`, "
            "`yesterday`, `2026-11-30`, `2026-11-30T09:00` or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return int(parsed.timestamp())
