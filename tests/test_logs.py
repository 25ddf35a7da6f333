"""Log lines: one record is one line, whatever strangers put in it; client noise is bounded."""

from __future__ import annotations

import json
import logging
import sys

from hypothesis import given
from hypothesis import strategies as st

from smsbridge.logs import ClientNoiseFilter, ConsoleFormatter, JsonFormatter, escape_controls


def record(
    msg: str, *args: object, name: str = "smsbridge.pipeline.poller", **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@given(st.text())
def test_a_console_line_never_holds_a_control_character(text: str) -> None:
    line = ConsoleFormatter().format(record("SMS %s to %s", text, text, field=text))
    assert "\n" not in line
    assert "\x1b" not in line
    assert not any(ord(ch) < 32 for ch in line)


def test_a_forged_line_stays_inside_its_record() -> None:
    line = ConsoleFormatter().format(record("id %s", "a\n2026-01-01 00:00:00 ERROR forged\x1b[2J"))
    assert line.endswith("id a\\n2026-01-01 00:00:00 ERROR forged\\x1b[2J")


def test_json_lines_stay_one_line_too() -> None:
    line = JsonFormatter().format(record("id %s", "a\nb"))
    assert "\n" not in line
    assert json.loads(line)["message"] == "id a\nb"


def test_escape_controls_keeps_ordinary_text() -> None:
    assert escape_controls("Jane Doe → +61 409 560 857, café") == (
        "Jane Doe → +61 409 560 857, café"
    )


def test_client_noise_is_one_line_once_per_interval() -> None:
    noise = ClientNoiseFilter(interval=60)
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        info = sys.exc_info()
    first = record("Invalid HTTP request received.", name="uvicorn.error")
    first.exc_info = info
    assert noise.filter(first)
    kept: object = first.exc_info
    assert kept is None  # a fact about a client, not a bug: no traceback
    assert first.getMessage() == (
        "Invalid HTTP request received.: ConnectionResetError: peer went away"
    )
    for _ in range(5):
        assert not noise.filter(record("Invalid HTTP request received.", name="uvicorn.error"))
    assert noise.filter(record("socket.accept() out of system resource", name="asyncio"))


def test_a_bug_in_our_application_keeps_its_traceback() -> None:
    try:
        raise KeyError("bug")
    except KeyError:
        info = sys.exc_info()
    bug = record("Exception in ASGI application\n", name="uvicorn.error")
    bug.exc_info = info
    assert ClientNoiseFilter().filter(bug)
    assert bug.exc_info is info
