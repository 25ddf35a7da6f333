"""Cursor rules: no loss, no endless loop, never backwards, under both readings of `since`."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsbridge.models import InboundSms, Page
from smsbridge.provider.cursor import (
    FUTURE_TOLERANCE,
    Stall,
    initial_since,
    latest_second,
    next_step,
)
from smsbridge.provider.paging import walk_pages

YEAR = 365 * 86_400


def test_initial_since_looks_back_and_never_below_zero() -> None:
    assert initial_since(now=10_000, lookback_seconds=900) == 9_100
    assert initial_since(now=100, lookback_seconds=900) == 0


def test_empty_page_keeps_cursor_and_stops_even_if_it_claims_more() -> None:
    step = next_step(since=500, timestamps=[], has_more=True)
    assert (step.next_since, step.fetch_more) == (500, False)


def test_partial_page_rereads_its_newest_second_next_time() -> None:
    step = next_step(since=500, timestamps=[501, 503, 503], has_more=False)
    assert (step.next_since, step.fetch_more, step.stall) == (502, False, Stall.NONE)


def test_older_page_never_rewinds_the_cursor() -> None:
    step = next_step(since=500, timestamps=[480, 490], has_more=False)
    assert step.next_since == 500


def test_full_page_continues_from_its_newest_second() -> None:
    step = next_step(since=500, timestamps=[501, 502, 507], has_more=True, page_size=3)
    assert (step.next_since, step.fetch_more) == (506, True)


def test_page_of_100_without_has_more_field_is_treated_as_full() -> None:
    step = next_step(since=0, timestamps=list(range(1, 101)), has_more=False)
    assert (step.next_since, step.fetch_more) == (99, True)


def test_full_page_over_two_seconds_steps_one_second_without_alarm() -> None:
    # Inclusive reading: second 500 re-read, then a page boundary inside second 501.
    step = next_step(since=500, timestamps=[500, 500, 501], has_more=True, page_size=3)
    assert (step.next_since, step.fetch_more, step.stall) == (501, True, Stall.NONE)


def test_full_page_inside_the_next_second_is_reported_overfull() -> None:
    # Exclusive reading: a whole page in second 501 alone.
    step = next_step(since=500, timestamps=[501, 501, 501], has_more=True, page_size=3)
    assert (step.next_since, step.fetch_more) == (501, True)
    assert (step.stall, step.stalled_second) == (Stall.OVERFULL_SECOND, 501)


def test_full_page_inside_the_cursor_second_moves_on_and_says_so() -> None:
    step = next_step(since=500, timestamps=[500, 500, 500], has_more=True, page_size=3)
    assert (step.next_since, step.fetch_more) == (501, True)
    assert (step.stall, step.stalled_second) == (Stall.OVERFULL_SECOND, 500)


def test_full_page_behind_the_cursor_stops_without_moving() -> None:
    step = next_step(since=500, timestamps=[400, 401, 402], has_more=True, page_size=3)
    assert (step.next_since, step.fetch_more) == (500, False)
    assert step.stall is Stall.PAGE_BEHIND_CURSOR


def test_a_future_stamp_is_not_followed() -> None:
    step = next_step(since=500, timestamps=[501, 502, 502 + YEAR], has_more=False, latest=510)
    assert (step.next_since, step.fetch_more) == (501, False)


def test_a_page_reaching_into_the_future_is_complete_however_full() -> None:
    # Pages are oldest first: a future stamp at the end means every present SMS is in the page.
    step = next_step(since=500, timestamps=[501, 600 + YEAR, 601 + YEAR], has_more=True,
                     page_size=3, latest=510)  # fmt: skip
    assert (step.next_since, step.fetch_more, step.stall) == (500, False, Stall.NONE)


def test_a_page_only_of_future_stamps_keeps_the_cursor() -> None:
    step = next_step(since=500, timestamps=[500 + YEAR] * 3, has_more=True, page_size=3,
                     latest=510)  # fmt: skip
    assert (step.next_since, step.fetch_more) == (500, False)


def test_latest_second_allows_only_a_small_tolerance() -> None:
    assert latest_second(1000.9) == 1000 + FUTURE_TOLERANCE
    assert FUTURE_TOLERANCE <= 10  # the cursor may follow a stamp this far ahead: keep it small


def test_records_without_a_stamp_still_make_a_page_full() -> None:
    step = next_step(since=500, timestamps=[501, 503], has_more=False, page_size=3, size=3)
    assert (step.next_since, step.fetch_more) == (502, True)


# -- a live provider, modelled ------------------------------------------------------------------


@dataclass
class LiveProvider:
    """Messages stamped with the provider's clock as they arrive; pages as documented."""

    inclusive: bool
    page_size: int
    clock: int = 1_000
    messages: list[tuple[int, int]] = field(default_factory=list)  # (timestamp, id)

    def arrive(self, count: int) -> None:
        for _ in range(count):
            self.messages.append((self.clock, len(self.messages)))

    def arrive_from_the_future(self, count: int) -> None:
        """A gateway clock gone wrong: stamped a year ahead."""
        for _ in range(count):
            self.messages.append((self.clock + YEAR, len(self.messages)))

    def page(self, since: int) -> tuple[list[tuple[int, int]], bool]:
        matching = sorted(
            m for m in self.messages if (m[0] >= since if self.inclusive else m[0] > since)
        )  # oldest first, as documented
        return matching[: self.page_size], len(matching) > self.page_size


class ModelFetcher:
    """The live provider model behind the real page walk (`walk_pages`), as the poller uses it."""

    def __init__(self, provider: LiveProvider, seen: set[int]) -> None:
        self.provider = provider
        self.seen = seen

    async def fetch_page(self, since: int) -> Page:
        page, has_more = self.provider.page(since)
        self.seen.update(ident for _, ident in page)
        messages = [
            InboundSms(sender="61400000000", document_id=str(ident), timestamp=ts)
            for ts, ident in page
        ]
        return Page(messages=messages, has_more_messages=has_more)


def poll_cycle(provider: LiveProvider, since: int, seen: set[int]) -> int:
    """One poll cycle through the real page walk; returns the new cursor."""
    latest = latest_second(provider.clock)

    async def cycle() -> int:
        cursor = since
        pages = walk_pages(
            ModelFetcher(provider, seen),
            since,
            clock=lambda: float(provider.clock),
            max_pages=10 * (len(provider.messages) + 10),
            page_size=provider.page_size,
        )
        async for _, step in pages:
            assert step.next_since >= cursor, "the cursor moved backwards"
            assert step.next_since <= latest, "the cursor passed the present"
            if step.fetch_more:
                assert step.next_since > cursor, "asked for more without moving: an endless loop"
            else:
                return step.next_since
            cursor = step.next_since
        raise AssertionError("poll cycle did not end")

    return asyncio.run(cycle())


events = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.integers(1, 7)),
        st.tuples(st.just("future"), st.integers(1, 3)),
        st.tuples(st.just("tick"), st.integers(0, 2)),
        st.tuples(st.just("poll"), st.just(0)),
    ),
    max_size=60,
)


@pytest.mark.parametrize("inclusive", [True, False], ids=["since-inclusive", "since-exclusive"])
@settings(max_examples=300, deadline=None)
@given(page_size=st.integers(1, 6), script=events)
def test_every_message_is_fetched_under_random_arrivals_and_page_boundaries(
    inclusive: bool, page_size: int, script: list[tuple[str, int]]
) -> None:
    provider = LiveProvider(inclusive=inclusive, page_size=page_size)
    since = initial_since(provider.clock, 60)
    seen: set[int] = set()
    for kind, value in script:
        if kind == "arrive":
            provider.arrive(value)
        elif kind == "future":
            provider.arrive_from_the_future(value)
        elif kind == "tick":
            provider.clock += value
        else:
            since = poll_cycle(provider, since, seen)
    provider.clock += 1  # the last second is over; one more poll reads whatever it held
    since = poll_cycle(provider, since, seen)
    per_second = Counter(ts for ts, _ in provider.messages)
    # Only a second with more messages than a page may lose some: the API cannot page past it.
    # Future-stamped messages sit beyond the present, after every real one: they may wait.
    present = {ident for ts, ident in provider.messages if ts <= latest_second(provider.clock)}
    reachable = {ident for ts, ident in provider.messages if per_second[ts] <= page_size} & present
    assert reachable <= seen


@pytest.mark.parametrize("inclusive", [True, False], ids=["since-inclusive", "since-exclusive"])
def test_overfull_second_is_passed_and_later_messages_still_arrive(inclusive: bool) -> None:
    provider = LiveProvider(inclusive=inclusive, page_size=3)
    provider.arrive(5)  # five in one second: more than a page
    provider.clock += 1
    provider.arrive(2)
    provider.clock += 1
    seen: set[int] = set()
    poll_cycle(provider, 990, seen)
    assert {5, 6} <= seen
