"""Opt-out keywords in inbound SMS. Pure.

A whole text that is one of the usual carrier keywords (case and surrounding spaces ignored)
opts the sender out of SMS from that line, or back in. Anything longer is an ordinary SMS:
"stop by at 5" opts nobody out.
"""

from __future__ import annotations

from enum import Enum

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


class OptChange(Enum):
    OUT = "out"
    IN = "in"


def notice(text: str) -> str | None:
    """What a bridged SMS's thread should say about a keyword it is, if anything.

    YES is left out: it opts back in only after an opt-out, and is most often just an answer.
    """
    word = text.strip().upper()
    if word in STOP_WORDS:
        return "This number has opted out (STOP): replies from Slack are not sent to it."
    if word in START_WORDS - {"YES"}:
        return "This number has opted back in: replies from Slack are sent again."
    return None


def opt_change(text: str, opted_out: bool) -> OptChange | None:
    """What this SMS changes, given whether its sender is opted out of the line now.

    START, UNSTOP and YES opt back in only after an opt-out: a plain "yes" from someone who
    never opted out is an answer, not a keyword.
    """
    word = text.strip().upper()
    if word in STOP_WORDS:
        return OptChange.OUT
    if word in START_WORDS and opted_out:
        return OptChange.IN
    return None
