"""The exception tree of smsbridge.

SmsBridgeError                  anything this package raises on purpose
├── ConfigError                 a setting is missing or wrong; the operator must fix it
├── ProviderError               the SMS provider did not give us a usable page
│   ├── ProviderTransientError  retry soon with backoff: HTTP 5xx, timeout, connection error,
│   │   │                       status 9999, a body that is not the documented JSON
│   │   ├── MalformedPageError  the body is JSON but not a page we can trust
│   │   └── ProviderInDoubtError  a send may have gone out without an answer saying so
│   └── ProviderRejectedError   the provider refused the request (status 1, 2, 3, 4, 200, 220):
│                               a person must act; retry slowly and say once what to fix
├── SlackError                  Slack refused or failed a call
│   ├── SlackTransientError     5xx, connection error, timeout: the post may or may not exist
│   ├── SlackRejectedError      channel_not_found, is_archived, invalid_blocks, ...: this
│   │                           message cannot be delivered until a person fixes the cause
│   └── SlackAuthError          invalid_auth and friends: fatal configuration error
└── StoreError                  the database cannot be used (e.g. its schema is newer than us)
"""

from __future__ import annotations

from typing import ClassVar


class SmsBridgeError(Exception):
    """Base of every error smsbridge raises on purpose."""


class ConfigError(SmsBridgeError):
    """A setting is missing or invalid. The message says which one and how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ProviderError(SmsBridgeError):
    """The SMS provider did not give us a usable page."""


class ProviderTransientError(ProviderError):
    """A failure that usually goes away by itself; retried with capped exponential backoff.

    `reached`: the request may have reached the provider (a timeout, a dropped connection),
    which matters for a send: it may have gone out.
    """

    def __init__(self, message: str, *, reached: bool = False) -> None:
        self.reached = reached
        super().__init__(message)


class MalformedPageError(ProviderTransientError):
    """The provider answered, but not with a page of the documented shape."""


class ProviderInDoubtError(ProviderTransientError):
    """An SMS may or may not have been sent: sending it again could send it twice."""


class ProviderRejectedError(ProviderError):
    """The provider answered with an error status that a person has to act on."""

    def __init__(self, status: int, meaning: str, fix: str) -> None:
        self.status = status
        self.meaning = meaning
        self.fix = fix
        super().__init__(f"SMS provider status {status}: {meaning}. {fix}")


class SlackError(SmsBridgeError):
    """Slack refused or failed a call."""


class SlackTransientError(SlackError):
    """Slack may or may not have done what we asked (5xx, timeout, connection error)."""


class SlackRejectedError(SlackError):
    """Slack refused this message for a reason a person must fix (channel archived, ...)."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"Slack channel {channel}: {reason}")


class SlackAuthError(SlackError):
    """Slack rejected one of our tokens: a fatal configuration error."""

    FIXES: ClassVar[dict[str, str]] = {
        "bot": "Set SMSBRIDGE_SLACK__BOT_TOKEN to the app's Bot User OAuth Token (xoxb-...) "
        "from the Slack app's 'OAuth & Permissions' page.",
        "app": "Set SMSBRIDGE_SLACK__APP_TOKEN to an app-level token (xapp-...) with the "
        "connections:write scope ('Basic Information' page), or unset it to use HTTP.",
    }

    def __init__(self, reason: str, token: str = "bot") -> None:
        self.reason = reason
        super().__init__(f"Slack rejected the {token} token ({reason}). {self.FIXES[token]}")


class StoreError(SmsBridgeError):
    """The database cannot be used as it is."""
