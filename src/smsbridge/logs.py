"""Logging: readable lines on a console, or one JSON object per line (`--log-format json`).

Fields passed with `extra=` (counts of a poll cycle, the cause of a failure) appear as
`key=value` after the message on the console and as their own keys in JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _with_fields(line: str, record: logging.LogRecord) -> str:
    extras = _extras(record)
    if not extras:
        return line
    return line + "  " + " ".join(f"{key}={value}" for key, value in extras.items())


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return _with_fields(super().format(record), record)


class ExtrasFormatter(logging.Formatter):
    """The message and its fields, for a handler that adds time and level itself (rich)."""

    def format(self, record: logging.LogRecord) -> str:
        return _with_fields(record.getMessage(), record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def setup_logging(
    level: str = "INFO", log_format: str = "console", console: Console | None = None
) -> None:
    """`console`: a rich console showing live progress; log lines then print above it."""
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
