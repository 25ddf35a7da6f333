"""History: read the provider live from a point in time, filter, and find the bridged posts.

Used by `/sms history` and `smsbridge history`. Reads pages with the same cursor rules as the
poller, so it neither misses nor repeats SMS at page boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smsbridge.models import InboundSms
from smsbridge.provider.cursor import next_step
from smsbridge.relay import PageFetcher
from smsbridge.store.store import PostRef, Store

MAX_PAGES = 50  # 5,000 SMS: a history answer is a look, not an export


@dataclass(frozen=True, slots=True)
class HistoryItem:
    sms: InboundSms
    post: PostRef | None  # where it was bridged, if it was


@dataclass(frozen=True, slots=True)
class HistoryResult:
    since: int
    matched: int  # how many SMS matched, before the limit
    items: list[HistoryItem]  # newest first, at most the limit
    incomplete: bool  # the scan stopped at MAX_PAGES

    def by_sender(self) -> list[tuple[str, list[HistoryItem]]]:
        """Items grouped per sender, groups in the order of each one's newest SMS."""
        groups: dict[str, list[HistoryItem]] = {}
        for item in self.items:
            groups.setdefault(item.sms.sender, []).append(item)
        return list(groups.items())


async def query_history(
    fetcher: PageFetcher,
    store: Store,
    account: str,
    *,
    since: int,
    keep: Callable[[InboundSms], bool],
    limit: int,
) -> HistoryResult:
    found: dict[str, InboundSms] = {}
    # One second earlier, so that `since` itself is included under either reading of the API.
    cursor = max(0, since - 1)
    incomplete = True
    for _ in range(MAX_PAGES):
        page = await fetcher.fetch_page(cursor)
        for sms in page.messages:
            found.setdefault(sms.document_id, sms)
        step = next_step(cursor, [sms.timestamp for sms in page.messages], page.has_more_messages)
        cursor = step.next_since
        if not step.fetch_more:
            incomplete = False
            break
    matching = [sms for sms in found.values() if sms.timestamp >= since and keep(sms)]
    matching.sort(key=lambda sms: sms.timestamp, reverse=True)  # stable: arrival order kept
    shown = matching[:limit]
    posts = await store.posts(account, [sms.document_id for sms in shown])
    return HistoryResult(
        since=since,
        matched=len(matching),
        items=[HistoryItem(sms, posts.get(sms.document_id)) for sms in shown],
        incomplete=incomplete,
    )
