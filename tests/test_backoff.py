from __future__ import annotations

from smsbridge.backoff import Backoff


def test_delays_grow_exponentially_up_to_the_cap_at_the_top_of_the_jitter() -> None:
    backoff = Backoff(base=1.0, cap=10.0, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_never_goes_below_the_base() -> None:
    backoff = Backoff(base=2.0, cap=60.0, rand=lambda: 0.0)
    assert {backoff.next_delay() for _ in range(5)} == {2.0}


def test_reset_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rand=lambda: 1.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0
