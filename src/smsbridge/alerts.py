"""On-call alert rules: which bridged SMS carry a mention. Pure.

A rule matches when every condition it sets holds: its keyword (case-insensitive, whole word),
its regex, and its sender list. The mention is ours: it is added outside the escaped SMS text,
so an SMS can trigger an alert but never write one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MENTION = re.compile(r"^(<!here>|<!channel>|<!subteam\^[A-Z0-9]+>|<@[UW][A-Z0-9]+>)$")


def _as_mention(token: str) -> str:
    """Slack's syntax, or the short forms people write: here, @here, S0123 (group), U0123."""
    token = token.strip()
    shorthand = token.removeprefix("@").lower()
    if shorthand in ("here", "channel"):
        return f"<!{shorthand}>"
    if re.fullmatch(r"S[A-Z0-9]{2,}", token):
        return f"<!subteam^{token}>"
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", token):
        return f"<@{token}>"
    if _MENTION.match(token):
        return token
    raise ValueError(
        f"mention {token!r} is not one of <!here>, <!channel>, <!subteam^S0123>, <@U0123> "
        "(or the short forms here, S0123, U0123)"
    )


class AlertRule(BaseModel):
    """One rule, as written in SMSBRIDGE_ALERTS (a JSON list of these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keyword: str | None = None
    regex: str | None = None
    senders: list[str] = Field(default_factory=list)  # normalised by Settings (default region)
    mention: list[str]
    reply_broadcast: bool = True

    @field_validator("mention", mode="before")
    @classmethod
    def _mentions(cls, value: object) -> object:
        tokens = value.split() if isinstance(value, str) else value
        if not isinstance(tokens, list) or not tokens:
            raise ValueError("mention is required: who to alert, e.g. <!subteam^S0123> or <!here>")
        return [_as_mention(str(token)) for token in tokens]

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"regex {value!r} does not compile: {error}") from None
        return value

    @model_validator(mode="after")
    def _has_a_condition(self) -> AlertRule:
        if not (self.keyword or self.regex or self.senders):
            raise ValueError("a rule needs a keyword, a regex or senders to match on")
        return self

    @cached_property
    def _patterns(self) -> list[re.Pattern[str]]:
        patterns = []
        if self.keyword:
            patterns.append(re.compile(rf"(?<!\w){re.escape(self.keyword)}(?!\w)", re.IGNORECASE))
        if self.regex:
            patterns.append(re.compile(self.regex))
        return patterns

    def matches(self, sender: str, text: str) -> bool:
        if self.senders and sender not in self.senders:
            return False
        return all(pattern.search(text) for pattern in self._patterns)


@dataclass(frozen=True, slots=True)
class Alert:
    mention: str  # Slack mention markup, ours, never escaped
    reply_broadcast: bool


def alert_for(rules: Sequence[AlertRule], sender: str, text: str) -> Alert | None:
    """The combined alert of every matching rule, or None."""
    mentions: list[str] = []
    broadcast = False
    for rule in rules:
        if rule.matches(sender, text):
            mentions.extend(m for m in rule.mention if m not in mentions)
            broadcast = broadcast or rule.reply_broadcast
    if not mentions:
        return None
    return Alert(mention=" ".join(mentions), reply_broadcast=broadcast)
