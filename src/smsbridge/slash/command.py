"""The `/sms` command: parse, check access and rate, answer. Never raises into Slack.

History reveals phone numbers and SMS texts, so it answers only in channels that receive SMS
(showing the SMS routed to that channel, which its members see anyway), or to the users listed
in SMSBRIDGE_HISTORY_ALLOWED_USERS (all SMS, anywhere; the answer is ephemeral).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.config import Account, Settings
from smsbridge.contacts_file import ContactEntry
from smsbridge.errors import ProviderRejectedError, ProviderTransientError
from smsbridge.models import InboundSms
from smsbridge.provider.paging import PageFetcher
from smsbridge.ratelimit import RateLimiter
from smsbridge.slack.errors import error_code
from smsbridge.slash.answers import (
    CONTACTS_SHOWN,
    Answer,
    Status,
    contact_list,
    contact_removed,
    contact_saved,
    help_answer,
    history_answer,
    not_here,
    our_failure,
    provider_refused,
    provider_unavailable,
    rate_limited,
    send_answer,
    status_answer,
)
from smsbridge.slash.arguments import (
    SEND_USAGE,
    ContactArgs,
    HelpArgs,
    HistoryArgs,
    SendArgs,
    SendToNameArgs,
    StatusArgs,
    parse_command,
    resolve_since,
)
from smsbridge.slash.history import query_history
from smsbridge.slash.recipients import find_recipient
from smsbridge.slash.replies import ReplyIntake
from smsbridge.store.store import Store

log = logging.getLogger(__name__)

COMMAND = "/sms"


class SmsCommand:
    def __init__(
        self,
        settings: Settings,
        sources: list[tuple[Account, PageFetcher]],
        store: Store,
        client: AsyncWebClient,
        status: Callable[[], Awaitable[list[Status]]],
        replies: ReplyIntake,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._replies = replies
        self._settings = settings
        self._sources = sources
        self._store = store
        self._client = client
        self._status = status
        self._clock = clock
        self._limiter = RateLimiter(settings.history_rate_limit, 60.0, clock)
        self._zones: dict[str, tuple[ZoneInfo, str | None]] = {}
        self._workspace_url: str | None = None

    async def answer(self, command: Mapping[str, Any]) -> Answer:
        try:
            return await self._answer(command)
        except Exception:
            log.exception("/sms failed")
            return our_failure()

    async def _answer(self, command: Mapping[str, Any]) -> Answer:
        parsed = parse_command(str(command.get("text") or ""), self._settings.default_region)
        if isinstance(parsed, HelpArgs):
            return help_answer(parsed.problem, self._settings.note_prefix)
        user = str(command.get("user_id") or "")
        if not self._limiter.allow(user):
            wait = max(1, round(self._limiter.retry_in(user)))
            return rate_limited(self._settings.history_rate_limit, wait)
        channel = str(command.get("channel_id") or "")
        if isinstance(parsed, SendToNameArgs):
            named = await self._named(parsed, channel)
            if isinstance(named, HelpArgs):
                return help_answer(named.problem, self._settings.note_prefix)
            if isinstance(named, Answer):
                return named
            parsed = named
        if isinstance(parsed, SendArgs):
            return send_answer(
                await self._replies.start(channel, user, parsed.number, parsed.line, parsed.text)
            )
        # History and status share one access rule: both show what the bridge carries.
        scope = self._scope(user, channel)
        if isinstance(scope, Answer):
            return scope
        in_channel, sources = scope
        if isinstance(parsed, StatusArgs):
            names = {account.name for account, _ in sources}
            statuses = [status for status in await self._status() if status.account in names]
            return status_answer(statuses, self._clock())
        if isinstance(parsed, ContactArgs):
            return await self._contact(parsed, [account for account, _ in sources])
        return await self._history(parsed, user, in_channel, sources)

    async def _named(self, args: SendToNameArgs, channel: str) -> SendArgs | HelpArgs | Answer:
        """`/sms send Jane Doe …` as `/sms send <her number> …`, by the contact books of the
        accounts routed to this channel."""
        book: dict[str, ContactEntry] = {}
        accounts = [account for account, _ in self._sources if channel in account.routes.values()]
        if not accounts:
            return send_answer("sending is not turned on for this channel (ask the bridge's admin)")
        for account in accounts:
            book = (await self._store.contacts.book(account.name)) | book
        found = find_recipient(args.rest, book.values())
        if isinstance(found, str):
            return send_answer(found)
        again = parse_command(
            f"send {found.contact.number} {found.rest}", self._settings.default_region
        )
        return again if isinstance(again, SendArgs) else HelpArgs(SEND_USAGE)

    async def _contact(self, args: ContactArgs, accounts: list[Account]) -> Answer:
        """The contact book of the accounts this channel (or this admin) sees."""
        contacts = self._store.contacts
        if args.action == "list":
            listed: dict[str, ContactEntry] = {}
            total = 0
            for account in accounts:
                entries, count = await contacts.listing(account.name, CONTACTS_SHOWN)
                total += count
                listed.update({entry.number: entry for entry in entries})
            shown = sorted(listed.values(), key=lambda e: (e.name.casefold(), e.number))
            return contact_list(
                [(e.number, e.name, e.note) for e in shown[:CONTACTS_SHOWN]],
                max(total, len(shown)),
            )
        assert args.number is not None
        if args.action == "remove":
            removed = [await contacts.remove(account.name, args.number) for account in accounts]
            names = [entry.name for entry in removed if entry is not None]
            return contact_removed(args.number, names[0] if names else None)
        assert args.name is not None
        created = False
        for account in accounts:
            known = await contacts.get(account.name, args.number)
            note = known.note if known is not None else ""  # a note from an import stays
            saved = await contacts.save_many(
                account.name, [ContactEntry(args.number, args.name, note)]
            )
            created = created or saved.added > 0
        return contact_saved(args.number, args.name, created)

    def _scope(
        self, user: str, channel: str
    ) -> tuple[str | None, list[tuple[Account, PageFetcher]]] | Answer:
        """(channel whose SMS may be shown or None for all, accounts to read), or a refusal.

        In a routed channel: the SMS routed there, from the accounts routed there (its members
        see them anyway). Users in SMSBRIDGE_HISTORY_ALLOWED_USERS: everything, anywhere.
        """
        settings = self._settings
        if user in settings.history_allowed_users:
            return None, self._sources
        if channel in settings.routed_channels:
            return channel, [(a, f) for a, f in self._sources if channel in a.routes.values()]
        return not_here(settings.routed_channels, bool(settings.history_allowed_users))

    async def _history(
        self,
        args: HistoryArgs,
        user: str,
        in_channel: str | None,
        sources: list[tuple[Account, PageFetcher]],
    ) -> Answer:
        zone, zone_note = await self._zone(user)
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        try:
            since = resolve_since(args.since, now, zone)
        except ValueError as error:
            return help_answer(str(error), self._settings.note_prefix)

        def keep(account: Account, sms: InboundSms) -> bool:
            if args.sender and sms.sender != args.sender:
                return False
            if args.line and sms.recipient != args.line:
                return False
            return in_channel is None or account.channel_for(sms.recipient) == in_channel

        try:
            result = await query_history(
                sources, self._store, since=since, keep=keep, limit=args.limit
            )
        except ProviderRejectedError as error:
            return provider_refused(error)
        except ProviderTransientError as error:
            return provider_unavailable(error)
        return history_answer(
            result,
            sender=args.sender,
            line=args.line,
            workspace_url=await self._workspace(),
            zone_note=zone_note,
        )

    async def _zone(self, user: str) -> tuple[ZoneInfo, str | None]:
        """The user's Slack time zone, for times typed without an offset; UTC when Slack's
        answer is missing, odd or refused."""
        if user not in self._zones:
            try:
                response = await self._client.users_info(user=user)
                profile = response.get("user")
                name = profile.get("tz") if isinstance(profile, dict) else None
                if not isinstance(name, str) or not name:
                    raise ValueError("no time zone in Slack's answer")
                self._zones[user] = (ZoneInfo(name), None)
            except Exception as error:  # any failure: UTC, said in the answer
                log.warning(
                    "cannot read the time zone of %s (%s); using UTC",
                    user,
                    type(error).__name__,
                )
                return ZoneInfo("UTC"), "Times without an offset were read as UTC."
        return self._zones[user]

    async def _workspace(self) -> str | None:
        if self._workspace_url is None:
            try:
                url = (await self._client.auth_test()).get("url")
            except Exception as error:  # any failure or odd answer: answer without links
                url = None
                reason = error_code(error)[1] if isinstance(error, SlackApiError) else None
                log.warning(
                    "auth.test failed (%s); history answers carry no thread links",
                    reason or type(error).__name__,
                )
            if isinstance(url, str) and url.startswith("https://"):
                self._workspace_url = url
        return self._workspace_url
