"""The provider's delivery statuses, in words a person understands, and when to ask again. Pure.

Final: 2 delivered; 3, 4, 5, 8, 9, 12, 13, 14, 15 not delivered (the reason below).
Not final: 0 unknown, 1 rerouting, 10 submitted, 11 sent, 16 submitted to outbound.
A final status arrives within 49 hours; after that nobody asks any more.
"""

from __future__ import annotations

DELIVERED = 2
NOT_DELIVERED: dict[int, str] = {
    3: "it expired before the phone could take it",
    4: "the SMS provider deleted it",
    5: "the number cannot receive it",
    8: "the phone network rejected it",
    9: "it could not be charged",
    12: "it cannot be delivered to that number",
    13: "the sending number is not allowed by the recipient's network",
    14: "a content filter blocked it",
    15: "the phone network found its content invalid",
}
GIVE_UP_AFTER = 49 * 3600  # seconds after sending: the provider's own limit for a final status
_CHECKS = (2, 30, 120, 600, 3600, 6 * 3600)  # seconds after sending; then every 6 hours


def is_final(status: int) -> bool:
    return status == DELIVERED or status in NOT_DELIVERED


def next_check(sent_at: float, now: float) -> float | None:
    """When to ask about an SMS sent at `sent_at` next, or None: too late to expect an answer."""
    elapsed = now - sent_at
    if elapsed >= GIVE_UP_AFTER:
        return None
    for offset in _CHECKS:
        if offset > elapsed:
            return sent_at + offset
    periods = int((elapsed - _CHECKS[-1]) // _CHECKS[-1]) + 1
    return min(sent_at + _CHECKS[-1] * (periods + 1), sent_at + GIVE_UP_AFTER)
