"""The per-channel token bucket that paces posts: pure, driven by a clock the test moves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsbridge.ratelimit import Pacer


def test_a_burst_goes_at_once_then_one_per_interval() -> None:
    now = [0.0]
    pacer = Pacer(1.0, 4, clock=lambda: now[0])
    assert [pacer.reserve("C1") for _ in range(6)] == [0, 0, 0, 0, 1, 2]
    assert pacer.reserve("C2") == 0  # each channel has its own bucket


def test_a_quiet_spell_fills_the_bucket_again_but_no_further() -> None:
    now = [0.0]
    pacer = Pacer(1.0, 3, clock=lambda: now[0])
    for _ in range(3):
        pacer.reserve("C1")
    now[0] = 100.0
    assert [pacer.reserve("C1") for _ in range(4)] == [0, 0, 0, 1]


def test_a_use_counted_when_its_answer_came_pushes_the_next_one_back() -> None:
    now = [0.0]
    pacer = Pacer(1.0, 1, clock=lambda: now[0])
    assert pacer.reserve("C1") == 0
    now[0] = 0.3  # the answer took 0.3 s: Slack may have counted the post as late as that
    pacer.spent("C1")
    assert pacer.reserve("C1") == 1.0  # one interval after the answer, not after the send


def test_an_interval_of_zero_paces_nothing() -> None:
    pacer = Pacer(0.0, 1)
    assert {pacer.reserve("C1") for _ in range(100)} == {0.0}


@given(
    interval=st.floats(0.1, 5),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0, 3), min_size=1, max_size=60),
    window=st.floats(0.1, 20),
)
def test_no_window_ever_holds_more_posts_than_the_burst_plus_the_rate(
    interval: float, burst: int, gaps: list[float], window: float
) -> None:
    """Whenever callers ask, the posts (each at its ask time plus the wait it was given) never
    exceed `burst` + window/interval in any window: what Slack's bucket allows."""
    now = [0.0]
    pacer = Pacer(interval, burst, clock=lambda: now[0])
    sent: list[float] = []
    for gap in gaps:
        now[0] += gap
        sent.append(now[0] + pacer.reserve("C1"))
    assert sent == sorted(sent)  # posts go in the order they were booked
    for start in sent:
        inside = [t for t in sent if start <= t < start + window]
        assert len(inside) <= burst + window / interval + 1e-9
