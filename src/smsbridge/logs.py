"""Logging set-up: readable lines on the console; noisy libraries kept to warnings."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
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
