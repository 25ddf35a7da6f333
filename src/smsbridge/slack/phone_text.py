"""What a person wrote in Slack, as a phone shows it. Pure.

Slack sends message text in its markup: mentions and links in angle brackets, `&`, `<`, `>`
escaped, emoji as `:codes:`. An SMS is plain text, so each becomes what a reader expects:

    <@U0123>                  ->  @Jane Doe   (the name Slack gave us, else @someone)
    <#C0123|field-ops>        ->  #field-ops
    <!here> <!subteam^S1|@oncall>  ->  @here  @oncall
    <https://x.example|label> ->  label (https://x.example)
    <mailto:a@b.example|a@b>  ->  a@b
    &amp; &lt; &gt;           ->  & < >
    :thumbsup:                ->  👍
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"<([^<>]*)>")


def to_phone_text(markup: str, user_names: Mapping[str, str] | None = None) -> str:
    """`markup` (a Slack message's text) as plain text for an SMS."""
    names = user_names or {}
    converted = _TOKEN.sub(lambda match: _token(match.group(1), names), markup)
    import emoji  # here, not at the top: its table of names was 13-20 ms of every start-up

    converted = emoji.emojize(converted, language="alias")
    # Entities last: an escaped "&lt;@U1&gt;" typed by a person must stay text, not a mention.
    return converted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mentioned_users(markup: str) -> set[str]:
    """The user IDs a message mentions, whose names the caller may look up."""
    return {token[1:].split("|", 1)[0] for token in _TOKEN.findall(markup) if token.startswith("@")}


def _token(body: str, names: Mapping[str, str]) -> str:
    target, _, label = body.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "@" + (names.get(user) or label or "someone")
    if target.startswith("#"):
        return "#" + (label or "channel")
    if target.startswith("!"):
        special = target[1:]
        if special.startswith("subteam^"):
            return label if label.startswith("@") else "@" + (label or "team")
        if special.startswith("date^"):
            return label or "a date"
        return "@" + special.split("^", 1)[0]
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if label and label != target:
        return f"{label} ({target})"
    return target
