"""Logging: readable lines on a console, or one JSON object per line (`--log-format json`).

Fields passed with `extra=` (counts of a poll cycle, the cause of a failure) appear as
`key=value` after the message on the console and as their own keys in JSON.

Values reach the log from strangers (a gateway's ids, a client's request line), so the console
format escapes control characters: a newline or an ANSI escape cannot forge a line. What the
web server and the event loop log about clients (bad requests, disconnects, running out of file
descriptors) is one line without traceback, and at most once per LOG_REPEAT_INTERVAL.

No line carries a full phone number unless `personal_data` is on: our own code passes numbers
as `privacy.Phone`, masked when written, and any number written with a leading `+` in a message
we did not write (a provider's error) is masked on the way out, in every format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from smsbridge.privacy import Phone, mask_written_numbers

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LOG_REPEAT_INTERVAL = 60.0  # seconds between two lines of the same client-caused complaint
# Loggers whose records strangers can cause (one per bad request, per failed accept()).
CLIENT_NOISE = ("uvicorn.error", "asyncio")


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (\\n, \\x1b): one record, one line."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def _private(text: str) -> str:
    return text if Phone.reveal else mask_written_numbers(text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: _private(value) if isinstance(value, str) else value
        for key, value in vars(record).items()
        if key not in _STANDARD
    }


def _with_fields(line: str, record: logging.LogRecord) -> str:
    extras = _extras(record)
    if not extras:
        return line
    return (
        line
        + "  "
        + " ".join(f"{key}={escape_controls(str(value))}" for key, value in extras.items())
    )


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(_private(record.message))
        return _with_fields(super().formatMessage(record), record)

    def formatException(self, ei: Any) -> str:
        return _private(super().formatException(ei))


class ExtrasFormatter(logging.Formatter):
    """The message and its fields, for a handler that adds time and level itself (rich)."""

    def format(self, record: logging.LogRecord) -> str:
        return _with_fields(escape_controls(_private(record.getMessage())), record)


class ClientNoiseFilter(logging.Filter):
    """One line, at most once per interval, for what clients and the OS cause.

    A traceback is kept only for an error in our own application code; a bad request line, a
    client that went away or a failed accept() is a fact about the outside, not a bug.
    """

    def __init__(self, interval: float = LOG_REPEAT_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{record.msg}"
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        if len(self._last) > 1000:  # bounded: forget the oldest kinds
            self._last = dict(list(self._last.items())[-500:])
        suppressed = self._suppressed.pop(key, 0)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and not _our_bug(record):
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = record.exc_text = None
        if suppressed:
            record.msg = f"{record.getMessage()} ({suppressed} more like it not logged)"
            record.args = None
        return True


def _our_bug(record: logging.LogRecord) -> bool:
    """An exception raised inside our application (not by a client or the network)."""
    return record.name == "uvicorn.error" and str(record.msg).startswith("Exception in ASGI")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _private(record.getMessage()),
            **_extras(record),
        }
        if record.exc_info:
            document["exception"] = _private(self.formatException(record.exc_info))
        return json.dumps(document, default=str, ensure_ascii=False)


def setup_logging(
    level: str = "INFO",
    log_format: str = "console",
    console: Console | None = None,
    personal_data: bool = False,
) -> None:
    """`console`: a rich console showing live progress; log lines then print above it.
    `personal_data`: full phone numbers in the log (for debugging; off in production)."""
    Phone.reveal = personal_data
    handler: logging.Handler
    if console is not None:
        handler = RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S")
        handler.setFormatter(ExtrasFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CLIENT_NOISE:
        logger = logging.getLogger(name)
        logger.handlers[:] = []  # uvicorn may have given it its own plain-text handler
        logger.propagate = True
        logger.filters[:] = [ClientNoiseFilter()]
    for noisy in (
        "apscheduler",
        "httpx",
        "httpcore",
        "slack_sdk",
        "slack_bolt",
        "aiosqlite",
        "uvicorn.error",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
