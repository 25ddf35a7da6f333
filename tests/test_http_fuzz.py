"""Fuzz the public port: random methods, paths, headers and bodies (some correctly signed) to a
real `Service` served by uvicorn. Whatever arrives, no 500 and no traceback in the log."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from conftest import INBOX, OPS, OPS_LINE, PASSWORD, USERNAME
from processes import free_port
from smsbridge.config import ProviderSettings, Settings, SlackSettings
from smsbridge.service import Service
from smsbridge.sim.provider import ProviderSim
from smsbridge.sim.serve import serve
from smsbridge.sim.slack import SlackSim

SECRET = "fuzz-signing-secret"


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A running bridge, its stand-ins and its event loop on a thread of their own."""
    listen = free_port()
    database = Path(tmp_path_factory.mktemp("fuzz")) / "bridge.db"
    running: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        slack = SlackSim()
        slack.add_channel(OPS, "field-ops")
        slack.add_channel(INBOX, "sms-inbox")
        async with serve(ProviderSim().app()) as provider_url, serve(slack.app()) as slack_url:
            service = Service(
                Settings(
                    provider=ProviderSettings(
                        url=provider_url, username=USERNAME, password=SecretStr(PASSWORD)
                    ),
                    slack=SlackSettings(
                        bot_token=SecretStr(slack.token),
                        signing_secret=SecretStr(SECRET),
                        api_url=f"{slack_url}/api/",
                        post_interval=0,
                    ),
                    database_url=f"sqlite:///{database}",
                    poll_interval=0.5,
                    routes={OPS_LINE: OPS, "*": INBOX},
                    port=listen,
                ),
                host="127.0.0.1",
                handle_signals=False,
            )
            running.update(loop=asyncio.get_running_loop(), service=service)
            task = asyncio.create_task(service.run())
            started.set()
            await task

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert started.wait(30)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{listen}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
    yield listen
    running["loop"].call_soon_threadsafe(running["service"].stop.set)
    thread.join(30)


# Header values a client can send at all (h11 refuses surrounding whitespace).
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "HEAD"]),
        "path": st.sampled_from(["/slack/events", "/healthz", "/readyz", "/metrics"])
        | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30).map(
            lambda tail: "/" + tail.replace("?", "").replace("#", "")
        ),
        "body": st.binary(max_size=3000)
        | st.text(max_size=500).map(str.encode)
        | st.dictionaries(header_text, header_text, max_size=8).map(
            lambda form: httpx.QueryParams(form).__str__().encode()
        ),
        "headers": st.dictionaries(
            st.sampled_from(
                [
                    "Content-Type",
                    "X-Slack-Request-Timestamp",
                    "X-Slack-Signature",
                    "X-Slack-Retry-Num",
                    "Accept",
                    "X-Anything",
                ]
            ),
            header_text,
            max_size=4,
        ),
        "sign": st.booleans(),
    }
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_no_request_gets_a_500_or_a_traceback(
    port: int, request: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    headers = dict(request["headers"])
    if request["sign"]:  # correctly signed: the fuzz reaches past the guard, into Bolt
        stamp = str(int(time.time()))
        headers["X-Slack-Request-Timestamp"] = stamp
        headers["X-Slack-Signature"] = str(
            SignatureVerifier(SECRET).generate_signature(
                timestamp=stamp, body=request["body"].decode("utf-8", "replace")
            )
        )
    with caplog.at_level(logging.WARNING):
        try:
            answer = httpx.request(
                request["method"],
                f"http://127.0.0.1:{port}{request['path']}",
                content=request["body"],
                headers=headers,
                timeout=10,
            )
        except (httpx.InvalidURL, httpx.LocalProtocolError):
            return  # a request httpx itself will not send
    assert answer.status_code != 500, answer.text
    if answer.status_code == 503:
        assert request["path"] == "/readyz"  # not ready yet is the only 503
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text
