"""Thread replies from Slack that go out by SMS: which messages qualify, what they become.

A person's message in a thread that smsbridge started, on a route with replies turned on, is
recorded in the outbox (or recorded as refused, with the reason) before Slack's event is
acknowledged; a second delivery of the same event finds the row and does nothing. Bot
messages (our own posts first of all), joins and other subtypes, top-level messages, threads
we did not start and internal notes (the note prefix) are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.config import DEFAULT_ROUTE, Account
from smsbridge.provider.encoding import sms_size
from smsbridge.ratelimit import RateLimiter
from smsbridge.slack.phone_text import mentioned_users, to_phone_text
from smsbridge.slack.render import escape, format_number, person
from smsbridge.store.outbox import OutState
from smsbridge.store.store import Store

log = logging.getLogger(__name__)

# Plain messages and messages with files; everything else (joins, edits, broadcasts) is not
# something a person wrote to the customer just now.
SENDABLE_SUBTYPES = frozenset({None, "file_share"})
GROUPS_TTL = 300.0  # seconds a user group's member list is trusted


class ReplyIntake:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        accounts: Mapping[str, Account],
        *,
        note_prefix: str,
        max_parts: int,
        per_person: int = 20,
        per_account: int = 120,
        allowed: Sequence[str] = (),
        on_queued: Callable[[str, str, str], Awaitable[None]],
        on_refused: Callable[[str, str, str, str, str], Awaitable[None]],
        post_parent: Callable[[str, str], Awaitable[str]],
        on_changed: Callable[[str, str, str], Awaitable[None]],
    ) -> None:
        self._on_changed = on_changed  # (channel, thread_ts, text) -> a note in the thread
        self._store = store
        self._client = client
        self._accounts = accounts
        self._note_prefix = note_prefix
        self._max_parts = max_parts
        self._on_queued = on_queued  # (account, channel, ts) -> show it queued, wake the sender
        # (account, channel, ts, thread_ts, reason) -> count it, tell the person
        self._on_refused = on_refused
        self._post_parent = post_parent  # (channel, mrkdwn) -> ts of the conversation's parent
        self._names: dict[str, str] = {}
        self._allowed_users = {entry for entry in allowed if not entry.startswith("S")}
        self._allowed_groups = [entry for entry in allowed if entry.startswith("S")]
        self._group_members: tuple[float, set[str]] | None = None  # (read at, members)
        self._per_person = RateLimiter(per_person, 60.0)
        self._per_account = RateLimiter(per_account, 60.0)

    async def receive(self, event: Mapping[str, Any]) -> None:
        """Record a thread reply that should go out. Raises if the database cannot take it,
        so that the event is not acknowledged and Slack delivers it again."""
        if event.get("subtype") in ("message_changed", "message_deleted"):
            await self._changed(event)
            return
        if event.get("bot_id") or event.get("subtype") not in SENDABLE_SUBTYPES:
            return
        channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
        thread_ts, user = event.get("thread_ts"), str(event.get("user") or "")
        if not (channel and ts and user and isinstance(thread_ts, str)) or thread_ts == ts:
            return
        text = str(event.get("text") or "")
        if text.lstrip().startswith(self._note_prefix):
            return  # an internal note, by the team's own convention
        if await self._store.outbox.get(channel, ts) is not None:
            return  # Slack delivered this event before
        found = await self._store.ledger.conversation(channel, thread_ts)
        if found is None:  # perhaps a conversation someone started with /sms send
            started = await self._store.outbox.get(channel, thread_ts)
            if started is None or started.thread_ts is not None:
                return  # not a thread smsbridge started
            found = (started.account, started.recipient, started.line)
        account_name, number, line = found
        account = self._accounts.get(account_name)
        if account is None or not account.replies_allowed(line):
            return  # replies are off for this route: the thread is the team's own
        phone_text = to_phone_text(text, await self._user_names(text))
        refusal = self._refusal(event, phone_text)
        if refusal is None and await self._store.optouts.is_out(account_name, line, number):
            refusal = "this number has opted out (STOP): replies to it are not sent"
        refusal = refusal or await self._not_allowed(user) or self._over_limit(account_name, user)
        new = await self._store.outbox.record(
            account_name, channel, ts, thread_ts, user, number, line, phone_text, refused=refusal
        )
        if not new:
            return  # Slack delivered this event before
        if refusal is not None:
            await self._on_refused(account_name, channel, ts, thread_ts, refusal)
        else:
            await self._on_queued(account_name, channel, ts)

    async def _changed(self, event: Mapping[str, Any]) -> None:
        """An SMS cannot be edited or unsent: say so when someone edits or deletes one."""
        channel = str(event.get("channel") or "")
        now, before = event.get("message"), event.get("previous_message")
        if event.get("subtype") == "message_deleted":
            original, what = event.get("deleted_ts"), "Deleting it in Slack does not unsend it"
        elif isinstance(now, dict) and isinstance(before, dict):
            if now.get("text") == before.get("text"):
                return  # not an edit of the text (a thread's reply count, an unfurl)
            original, what = now.get("ts"), "The edit is not sent as a second SMS"
        else:
            return
        if not isinstance(original, str):
            return
        sms = await self._store.outbox.get(channel, original)
        if sms is None or sms.state in (OutState.REFUSED, OutState.FAILED):
            return
        await self._on_changed(
            channel,
            sms.thread_ts or sms.slack_ts,
            f":information_source: {what}: an SMS cannot be changed once it is on its way. "
            "The customer has the text that was sent.",
        )

    async def start(
        self, channel: str, user: str, number: str, line: str | None, text: str
    ) -> str | None:
        """`/sms send`: open a thread in `channel` with the SMS as its parent and queue the SMS.
        Returns why it is not sent, or None when it is queued."""
        chosen = self._line_for(channel, line)
        if isinstance(chosen, str):
            return chosen
        account_name, from_line = chosen
        phone_text = to_phone_text(text, await self._user_names(text))
        refusal = self._refusal({}, phone_text)
        if refusal is None and await self._store.optouts.is_out(account_name, from_line, number):
            refusal = "this number has opted out (STOP): SMS to it are not sent"
        refusal = refusal or await self._not_allowed(user) or self._over_limit(account_name, user)
        if refusal is not None:
            return refusal
        contact = (await self._store.contacts.book(account_name)).get(number)
        parent = await self._post_parent(
            channel,
            f":outbox_tray: *SMS to {person(number, contact.name if contact else None)}* from "
            f"{format_number(from_line) if from_line else 'the provider'} by <@{user}>\n"
            f"{escape(phone_text)}",
        )
        await self._store.outbox.record(
            account_name, channel, parent, None, user, number, from_line, phone_text
        )
        await self._on_queued(account_name, channel, parent)
        return None

    def _line_for(self, channel: str, line: str | None) -> tuple[str, str | None] | str:
        """(account, line) that `/sms send` in `channel` goes out from, or why there is none."""
        options = [
            (name, key)
            for name, account in self._accounts.items()
            for key, routed in account.routes.items()
            if routed == channel and key in account.replies
        ]
        if not options:
            return "sending is not turned on for this channel (ask the bridge's admin)"
        if line is not None:
            named = [(name, key) for name, key in options if key == line]
            if named:
                return named[0]
            return f"{format_number(line)} is not a line of this channel"
        lines = [(name, key) for name, key in options if key != DEFAULT_ROUTE]
        if len(lines) > 1:
            shown = ", ".join(format_number(key) for _, key in lines)
            return f"this channel has several lines ({shown}): add `from <line>` after the number"
        if lines:
            return lines[0]
        return options[0][0], None  # the default route: the provider picks the number

    async def _not_allowed(self, user: str) -> str | None:
        """Why `user` may not send, when the admin narrowed who may (SMSBRIDGE_SEND_ALLOWED)."""
        if not (self._allowed_users or self._allowed_groups) or user in self._allowed_users:
            return None
        if user in await self._members():
            return None
        return "only the people the bridge's admin listed may send SMS from Slack"

    async def _members(self) -> set[str]:
        """Members of the allowed user groups, read at most every GROUPS_TTL seconds."""
        cached = self._group_members
        if cached is not None and time.monotonic() - cached[0] < GROUPS_TTL:
            return cached[1]
        members: set[str] = set()
        for group in self._allowed_groups:
            try:
                answer = await self._client.usergroups_users_list(usergroup=group)
                users = answer.get("users")
            except Exception as error:  # unreadable: nobody gets in through this group
                log.warning("cannot read the members of %s (%s)", group, type(error).__name__)
                continue
            if isinstance(users, list):
                members.update(str(user) for user in users)
        self._group_members = (time.monotonic(), members)
        return members

    def _over_limit(self, account: str, user: str) -> str | None:
        """Counts one SMS against both limits; the reason when one of them is reached."""
        if not self._per_person.allow(user):
            wait = max(1, round(self._per_person.retry_in(user)))
            return f"you have sent the most SMS allowed in a minute; try again in {wait} seconds"
        if not self._per_account.allow(account):
            wait = max(1, round(self._per_account.retry_in(account)))
            return (
                "this account has sent the most SMS allowed in a minute (ask the bridge's admin "
                f"to raise SMSBRIDGE_SEND_LIMIT_PER_ACCOUNT); try again in {wait} seconds"
            )
        return None

    def _refusal(self, event: Mapping[str, Any], text: str) -> str | None:
        if event.get("files") or event.get("subtype") == "file_share":
            return "files and images cannot be sent by SMS (there is no MMS here)"
        if not text.strip():
            return "there is no text to send"
        size = sms_size(text)
        if size.parts > self._max_parts:
            return (
                f"it would take {size.parts} SMS parts ({size.units} {size.encoding} characters), "
                f"and the limit is {self._max_parts} parts; please shorten it"
            )
        return None

    async def _user_names(self, text: str) -> dict[str, str]:
        """Names for the people a message mentions, so the phone shows names, not IDs."""
        for user in mentioned_users(text) - self._names.keys():
            try:
                profile = (await self._client.users_info(user=user)).get("user")
            except Exception as error:  # a name is a nicety: @someone will do
                log.info("cannot read the name of %s (%s)", user, type(error).__name__)
                continue
            if isinstance(profile, dict):
                name = profile.get("real_name") or profile.get("name")
                if isinstance(name, str) and name:
                    self._names[user] = name
        return self._names
