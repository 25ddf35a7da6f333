"""Slack's failures mapped to ours, in one place: which are fatal, which transient.

The SDK raises `SlackApiError` with an answer that may be a parsed object, a string or the raw
HTTP response (when the body was not JSON); nothing here assumes its shape.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from smsbridge.errors import SlackAuthError, SlackRejectedError, SlackTransientError

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
    }
)


def error_code(error: SlackApiError) -> tuple[int, str | None]:
    """(HTTP status, Slack's error code) of a failed call, whatever shape the answer had.

    The SDK raises with an answer that may be a parsed object, a string or the raw HTTP
    response (when the body was not JSON), so nothing here assumes its shape.
    """
    response = error.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    return (status if isinstance(status, int) else 0), (str(code) if code else None)


def classify(error: SlackApiError, channel: str) -> Exception:
    """Map an SDK error to ours. 429 and not_in_channel are handled before this is called."""
    status, code = error_code(error)
    return classify_answer(
        status, code, isinstance(getattr(error.response, "data", None), dict), channel
    )


def classify_answer(status: int, code: str | None, is_json: bool, channel: str) -> Exception:
    """Map a failed call's HTTP status and Slack's error code (None when the answer had none,
    or was not a JSON object: `is_json` False) to ours."""
    if code in AUTH_ERRORS:
        return SlackAuthError(str(code))
    if code is None and not is_json:
        return SlackTransientError(f"Slack answered HTTP {status} with a body that is not JSON")
    if status >= 500 or code in (
        "internal_error",
        "fatal_error",
        "service_unavailable",
    ):
        return SlackTransientError(f"Slack answered HTTP {status} ({code or 'no error code'})")
    if code is None:  # ok was not true, yet no reason given: nothing a person can fix
        return SlackTransientError(f"Slack answered HTTP {status} without ok or an error code")
    return SlackRejectedError(channel, code)
