"""Paging and cursor rules for the messages endpoint. Pure: no I/O, no clock.

The provider pages with `since` (epoch seconds) and tells us to continue from the newest
timestamp of the last page, without saying whether `since` is inclusive (`>=`) or exclusive
(`>`). Timestamps have one-second resolution, a page boundary may fall inside a second, and
new messages keep arriving within the second just read. The rules below are safe under both
readings; the ledger dedupes by `documentId`, so re-reading a message costs nothing but bytes.

The cursor is the `since` we send next. After a page whose newest second is L we send L - 1:
exclusive, that asks for L onwards; inclusive, for L - 1 onwards. Either way second L, which
may be incomplete (page boundary, late arrivals), is read again. That alone could stall on a
full page inside one or two seconds, so a full page that would not move the cursor forward
steps it by one second instead; when a full page lies entirely within one second, more than a
page of messages share that second, which the API itself cannot page past, and we say so.

Message timestamps are the authority: `newestMessageTimestamp` is ignored because documented
examples contradict their own messages, and an empty page or an older page never rewinds us.

The cursor never passes the present. A message stamped in the future (a gateway clock gone
wrong, a year ahead) is still taken and posted, but the cursor does not follow it: were it to,
every SMS that arrives until that future moment would lie behind the cursor and never be fetched.
Stamps later than `latest` (the present plus a tolerance) are therefore left out of the rules.
Pages are oldest first, so a page that reaches into the future holds every present message
from `since` on: it counts as complete, however many messages it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from smsbridge.models import PAGE_SIZE


class Stall(Enum):
    """Why a page could not move the cursor the normal way."""

    NONE = "none"
    # More than a page of messages share one second: the API cannot page past them, so the
    # cursor steps over that second and whatever of it did not fit in the page is out of reach.
    OVERFULL_SECOND = "overfull_second"
    # A full page of messages all older than `since`: the provider ignored our cursor.
    PAGE_BEHIND_CURSOR = "page_behind_cursor"


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after one page."""

    next_since: int  # the cursor to persist and send next; never below the `since` just sent
    fetch_more: bool  # ask for another page right away
    stall: Stall = Stall.NONE
    stalled_second: int | None = None
    latest: int | None = None  # the newest second the rules followed; later stamps are future


def initial_since(now: int, lookback_seconds: int) -> int:
    """Where a first start begins reading."""
    return max(0, now - lookback_seconds)


FUTURE_TOLERANCE = 5
"""Seconds a stamp may lie ahead of the present before it counts as future.

Kept small on purpose: the cursor may follow a stamp up to this far ahead, and an SMS that then
arrives stamped earlier would lie behind the cursor. The present is the provider's own clock
(its Date header) where it sends one, so only that clock's jitter needs covering. A stamp a
little ahead through skew is only delayed (re-read each poll until it is no longer ahead).
"""


def latest_second(present: float) -> int:
    """The newest second the cursor may follow, given the present on the provider's clock."""
    return int(present) + FUTURE_TOLERANCE


def next_step(
    since: int,
    timestamps: Sequence[int],
    has_more: bool,
    page_size: int = PAGE_SIZE,
    *,
    latest: int | None = None,
    size: int | None = None,
) -> Step:
    """Given the `since` we sent and the timestamps of the page it returned, decide what next.

    `latest`: the newest second the cursor may follow (see `latest_second`); later stamps are
    left out. `size`: how many records the page held, when some had no usable timestamp.
    """
    return replace(_decide(since, timestamps, has_more, page_size, latest, size), latest=latest)


def _decide(
    since: int,
    timestamps: Sequence[int],
    has_more: bool,
    page_size: int,
    latest: int | None,
    size: int | None,
) -> Step:
    count = max(len(timestamps), size or 0)
    usable = [t for t in timestamps if latest is None or t <= latest]
    future = len(usable) < len(timestamps)
    if not usable:
        # Nothing (or nothing of the present) came back: keep the cursor, and stop even if the
        # page claims more (else a provider that says hasMoreMessages on an empty page would
        # keep us looping).
        return Step(next_since=since, fetch_more=False)
    newest = max(usable)
    overlap = newest - 1  # re-read the newest second under either reading of `since`
    full = not future and (has_more or count >= page_size)
    if not full:
        return Step(next_since=max(since, overlap), fetch_more=False)
    if overlap > since:
        return Step(next_since=overlap, fetch_more=True)
    if newest == since + 1:
        # Full page within seconds since..since+1. Inclusive: continue at since+1 and lose
        # nothing. Exclusive: the page held only second since+1, which therefore has more
        # messages than a page; stepping on is the only way forward. Only in the second case is
        # anything out of reach, and then the page is all one second: say so.
        one_second = min(usable) == newest
        return Step(
            next_since=newest,
            fetch_more=True,
            stall=Stall.OVERFULL_SECOND if one_second else Stall.NONE,
            stalled_second=newest if one_second else None,
        )
    if newest == since:
        # Inclusive reading, a full page of messages all in second `since`: overfull.
        return Step(
            next_since=since + 1,
            fetch_more=True,
            stall=Stall.OVERFULL_SECOND,
            stalled_second=since,
        )
    return Step(
        next_since=since, fetch_more=False, stall=Stall.PAGE_BEHIND_CURSOR, stalled_second=newest
    )
