"""One walk over the gateway's pages from a `since`: the poller, history and the tests use it.

    async for page, step in walk_pages(fetcher, since, clock=time.time):
        ...  # handle the page; step.next_since is where the walk goes on from

The cursor rules (`cursor.py`) decide each step; the walk only fetches, asks them, and stops
when they say so or after `max_pages`. The consumer handles each page before the next is
fetched, so the poller can store a page and its cursor in one transaction first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from smsbridge.models import PAGE_SIZE, Page
from smsbridge.provider.cursor import Step, latest_second, next_step


class PageFetcher(Protocol):
    """Anything that reads one page of inbound SMS from a `since` (the provider client)."""

    async def fetch_page(self, since: int) -> Page: ...


async def walk_pages(
    fetcher: PageFetcher,
    since: int,
    *,
    clock: Callable[[], float],
    max_pages: int,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[tuple[Page, Step]]:
    """Each page from `since` on, with the step the cursor rules take after it."""
    for _ in range(max_pages):
        page = await fetcher.fetch_page(since)
        # The present on the provider's clock (its Date header), else ours: the cursor never
        # follows a stamp beyond it.
        step = next_step(
            since,
            page.timestamps,
            page.has_more_messages,
            page_size,
            latest=latest_second(page.provider_time or clock()),
            size=page.size,
        )
        yield page, step
        since = step.next_since
        if not step.fetch_more:
            return
