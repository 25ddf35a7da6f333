"""History: read the provider live from a point in time, filter, and find the bridged posts.

Used by `/sms history` and `smsbridge history`. Reads pages with the same walk as the poller
(`provider/paging.py`), so it neither misses nor repeats SMS at page boundaries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smsbridge.config import Account
from smsbridge.models import PAGE_SIZE, InboundSms
from smsbridge.provider.paging import PageFetcher, walk_pages
from smsbridge.store.ledger import PostRef
from smsbridge.store.store import Store

MAX_PAGES = 50  # a history answer is a look, not an export
MAX_SCANNED = MAX_PAGES * PAGE_SIZE  # 5,000 SMS


@dataclass(frozen=True, slots=True)
class HistoryItem:
    sms: InboundSms
    post: PostRef | None  # where it was bridged, if it was
    name: str | None = None  # the sender's name in the account's contact book


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
    sources: Sequence[tuple[Account, PageFetcher]],
    store: Store,
    *,
    since: int,
    keep: Callable[[Account, InboundSms], bool],
    limit: int,
) -> HistoryResult:
    """SMS of every source account from `since` that `keep` accepts, newest first."""
    found: list[tuple[Account, InboundSms]] = []
    incomplete = False
    for account, fetcher in sources:
        messages, cut = await _read_since(fetcher, since)
        found.extend((account, sms) for sms in messages if keep(account, sms))
        incomplete = incomplete or cut
    found.sort(key=lambda pair: pair[1].timestamp, reverse=True)  # stable: arrival order kept
    shown = found[:limit]
    posts: dict[str, dict[str, PostRef]] = {}
    names: dict[str, dict[str, str]] = {}
    for account, _ in sources:
        ids = [sms.document_id for owner, sms in shown if owner is account]
        posts[account.name] = await store.ledger.posts(account.name, ids) if ids else {}
        book = await store.contacts.book(account.name) if ids else {}
        names[account.name] = {number: entry.name for number, entry in book.items()}
    return HistoryResult(
        since=since,
        matched=len(found),
        items=[
            HistoryItem(
                sms,
                posts[owner.name].get(sms.document_id),
                names[owner.name].get(sms.sender),
            )
            for owner, sms in shown
        ],
        incomplete=incomplete,
    )


async def _read_since(fetcher: PageFetcher, since: int) -> tuple[list[InboundSms], bool]:
    """Every SMS from `since` on (deduplicated), and whether the scan stopped at MAX_PAGES."""
    found: dict[str, InboundSms] = {}
    # One second earlier, so that `since` itself is included under either reading of the API.
    complete = False
    async for page, step in walk_pages(
        fetcher, max(0, since - 1), clock=time.time, max_pages=MAX_PAGES
    ):
        for sms in page.messages:
            found.setdefault(sms.document_id, sms)
        complete = not step.fetch_more
    return [sms for sms in found.values() if sms.timestamp >= since], not complete
