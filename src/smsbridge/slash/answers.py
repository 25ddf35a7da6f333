"""What `/sms` answers, as Slack messages (text + blocks): all of its wording lives here. Pure.

SMS content is escaped exactly as in bridged messages; only our own markup (dates, links,
bold) is live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from smsbridge.errors import ProviderRejectedError, ProviderTransientError
from smsbridge.slack.render import SECTION_LIMIT, escape, format_number, person, slack_date
from smsbridge.slash.arguments import MAX_LIMIT
from smsbridge.slash.history import MAX_SCANNED, HistoryResult

ITEM_TEXT_LIMIT = 400  # characters of one SMS in a history answer; the thread link has it all


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Status:
    account: str
    last_success: float | None
    last_error: str | None
    cursor: int | None
    bridged_today: int
    counts: dict[str, int]
    slack_error: str | None
    polled_by: str | None = None  # the replica holding the polling lease
    outbound: dict[str, int] = field(default_factory=dict)  # SMS written in Slack, per state
    arrivals: dict[str, int] | None = None  # today's SMS by path, when pushes are on
    pushes_rejected: int = 0  # pushes this replica answered with an error since it started
    poll_every: float | None = None  # seconds between polls now, when pushes are on


USAGE = (
    "*/sms history* `<since>` [`from <number>`] [`to <line>`] [`limit <n>`]\n"
    "    `<since>`: `30m`, `2h`, `3d`, `1w`, `today`, `yesterday`, `2026-11-30`, "
    "`2026-11-30T09:00` (your time zone unless you add an offset) or epoch seconds\n"
    "*/sms send* `<number>` [`from <line>`] `<text>`: send an SMS and open a thread for the "
    "answers (in channels where sending is turned on)\n"
    "*/sms contact* `add <number> <name>` · `remove <number>` · `list`: the contact book, whose "
    "names show beside numbers\n"
    "*/sms status*: is the bridge healthy, what is waiting or failed\n"
    "*/sms help*: this text\n"
    "Examples: `/sms history 2h` · `/sms history today from 0409 560 857` · "
    "`/sms history since:3d to:61411001001 limit:50`"
)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def replies_help(note_prefix: str) -> str:
    return (
        "*Answering by SMS*: in a channel where the bridge's admin turned replies on, a reply in "
        "an SMS's thread goes out by SMS to its sender. Start a reply with "
        f"`{escape(note_prefix)}` to keep it an internal note: it is never sent."
    )


def help_answer(problem: str | None = None, note_prefix: str = "//") -> Answer:
    blocks = [_section(f":warning: {problem}")] if problem else []
    usage = f"{USAGE}\n{replies_help(note_prefix)}"
    blocks.append(_section(usage))
    return Answer(text=(problem + "\n" if problem else "") + usage, blocks=blocks)


def notice(text: str) -> Answer:
    """A one-line answer: access refused, rate limit, provider trouble."""
    return Answer(text=text, blocks=[_section(text)])


def our_failure() -> Answer:
    return notice(":x: Something went wrong on our side; the details are in the bridge's log.")


def rate_limited(per_minute: int, wait: int) -> Answer:
    return notice(
        f":hourglass: You have used `/sms` {per_minute} times in the last minute. "
        f"Please try again in {wait} seconds."
    )


def not_here(routed_channels: list[str], has_allow_list: bool) -> Answer:
    """History and status refused outside the channels that receive SMS."""
    where = ", ".join(f"<#{channel}>" for channel in routed_channels)
    return notice(
        ":lock: `/sms history` and `/sms status` show phone numbers, SMS texts and the "
        f"bridge's state, so `/sms` answers only in channels that receive SMS ({where})"
        + (" or to the people listed by the bridge's admin." if has_allow_list else ".")
    )


def provider_refused(error: ProviderRejectedError) -> Answer:
    what = (
        "rejected our credentials"
        if error.status in (3, 200)
        else f"refused the request: {error.meaning}"
    )
    return notice(
        f":x: The SMS provider {what} (status {error.status}), so history is unavailable. "
        f"The bridge's admin can fix this: {error.fix}"
    )


def provider_unavailable(error: ProviderTransientError) -> Answer:
    return notice(
        f":x: The SMS provider is not answering properly right now ({escape(str(error))}). "
        "Please try again in a minute."
    )


def send_answer(refusal: str | None) -> Answer:
    """What `/sms send` tells the person who asked."""
    if refusal is not None:
        return notice(f":x: Not sent: {escape(refusal)}")
    return notice(
        ":outbox_tray: Queued. Its thread in this channel shows when it is sent, and the "
        "answer arrives there."
    )


CONTACTS_SHOWN = 50  # contacts a list answer shows; the import file is the full book


def contact_saved(number: str, name: str, created: bool) -> Answer:
    verb = "Added" if created else "Updated"
    return notice(f":bust_in_silhouette: {verb} {person(number, name)} in the contact book.")


def contact_removed(number: str, name: str | None) -> Answer:
    if name is None:
        return notice(f"No contact has the number {format_number(number)}.")
    return notice(f":wastebasket: Removed {person(number, name)} from the contact book.")


def contact_list(entries: list[tuple[str, str, str]], total: int) -> Answer:
    """(number, name, note) each, sorted by name; `total` contacts in all."""
    if not entries:
        return notice(
            "The contact book is empty. Add someone with `/sms contact add <number> <name>`, "
            "or many with `smsbridge contacts import FILE`."
        )
    lines = [
        f"• {person(number, name)}" + (f" · {escape(note)}" if note else "")
        for number, name, note in entries
    ]
    blocks = [_section(f"*{total} contact(s)*")]
    blocks.extend(_section(chunk) for chunk in _pack(lines, SECTION_LIMIT))
    if total > len(entries):
        blocks.append(_context(f"Showing {len(entries)} of {total}."))
    return Answer(text=f"{total} contact(s)", blocks=blocks[:50])


def history_answer(
    result: HistoryResult,
    *,
    sender: str | None,
    line: str | None,
    workspace_url: str | None,
    zone_note: str | None = None,
) -> Answer:
    filters = "".join(
        [
            f" from {format_number(sender)}" if sender else "",
            f" to {format_number(line)}" if line else "",
        ]
    )
    since = slack_date(result.since)
    if not result.items:
        text = f"No SMS{filters} since {since}."
        return Answer(text=text, blocks=[_section(text)])
    headline = f"*{result.matched} SMS*{filters} since {since}, newest first"
    blocks: list[dict[str, Any]] = [_section(headline)]
    lines: list[str] = []
    for sender_number, items in result.by_sender():
        lines.append(f"*{person(sender_number, items[0].name)}*")
        for item in items:
            sms = item.sms
            body = (
                sms.text if len(sms.text) <= ITEM_TEXT_LIMIT else sms.text[:ITEM_TEXT_LIMIT] + "…"
            )
            line_text = f"• {slack_date(sms.timestamp)}"
            if sms.recipient:
                line_text += f" → {format_number(sms.recipient)}"
            line_text += f": {escape(body) or '_(empty)_'}"
            if item.post and workspace_url:
                line_text += f"  <{item.post.permalink(workspace_url)}|thread>"
            lines.append(line_text)
    blocks.extend(_section(chunk) for chunk in _pack(lines, SECTION_LIMIT))
    notes = []
    if result.matched > len(result.items):
        notes.append(
            f"Showing {len(result.items)} of {result.matched}. Narrow it down with "
            f"`from <number>`, `to <line>` or a later time, or raise `limit` (up to {MAX_LIMIT})."
        )
    if result.incomplete:
        notes.append(f"The search stopped after {MAX_SCANNED:,} SMS; ask for a later start time.")
    if zone_note:
        notes.append(zone_note)
    if notes:
        blocks.append(_context(" ".join(notes)))
    fallback = f"{result.matched} SMS{filters} since {since}"
    return Answer(text=fallback, blocks=blocks[:50])


def _pack(lines: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = line[:limit]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def status_answer(statuses: list[Status], now: float) -> Answer:
    """One section per provider account (one account: no account headings)."""
    sections = [_status_lines(status, now, titled=len(statuses) > 1) for status in statuses]
    text = "\n\n".join(sections)
    return Answer(text=text, blocks=[_section(section) for section in sections])


def _status_lines(status: Status, now: float, *, titled: bool) -> str:
    def ago(moment: float) -> str:
        seconds = max(0, int(now - moment))
        return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60} min ago"

    poll = (
        f"{slack_date(int(status.last_success))} ({ago(status.last_success)})"
        if status.last_success
        else "none yet"
    )
    provider = (
        ":white_check_mark: ok" if not status.last_error else f":x: {escape(status.last_error)}"
    )
    slack = (
        ":white_check_mark: ok" if not status.slack_error else f":x: {escape(status.slack_error)}"
    )
    counts = status.counts
    lines = [
        f"*smsbridge status: {escape(status.account)}*" if titled else "*smsbridge status*",
        f"• Last successful poll: {poll}"
        + (f" by `{escape(status.polled_by)}`" if status.polled_by else ""),
        f"• Cursor: {slack_date(status.cursor) if status.cursor is not None else 'not set yet'}",
        f"• Bridged today (UTC): {status.bridged_today}",
        *(
            [
                f"• Pushed today: {status.arrivals.get('push', 0)}"
                f" · found only by polling: {status.arrivals.get('poll', 0)}"
                + (" (pushes are being lost upstream)" if status.arrivals.get("poll") else "")
                + f" · pushes refused since start: {status.pushes_rejected}"
                + (f" · polling every {status.poll_every:g}s" if status.poll_every else "")
            ]
            if status.arrivals is not None
            else []
        ),
        f"• Waiting: {counts.get('pending', 0) + counts.get('posting', 0)}"
        f" · Failed: {counts.get('failed', 0)} · Unrouted: {counts.get('unrouted', 0)}"
        f" · Invalid from the gateway: {counts.get('invalid', 0)}",
        f"• Sent from Slack: {status.outbound.get('sent', 0)}"
        f" · Not sent: {status.outbound.get('failed', 0) + status.outbound.get('refused', 0)}"
        f" · Waiting: {status.outbound.get('queued', 0) + status.outbound.get('sending', 0)}",
        f"• SMS provider: {provider}",
        f"• Slack: {slack}",
    ]
    return "\n".join(lines)


def start_of_utc_day(now: float) -> float:
    moment = datetime.fromtimestamp(now, tz=UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
