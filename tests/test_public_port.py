"""The public port and the process, tried as an attacker and as an unlucky operator would:
bodies too large or too slow, unsigned or undecodable requests, idle and half-sent
connections, a flood of connections, garbage on the wire; what /readyz and the logs show;
the database's files, a read-only database, a missing PostgreSQL database, secrets in URLs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from conftest import PASSWORD, Served, postgres_url
from processes import bridge_env, finish, smsbridge, wait_ready
from smsbridge.embedded_server import HEADER_TIMEOUT, MAX_CONNECTIONS
from smsbridge.sim.provider import Fault
from smsbridge.slash.app import MAX_BODY

SECRET = "test-signing-secret"


async def running(
    served: Served, tmp_path: Path, *args: str, **extra: str
) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    env = bridge_env(served, tmp_path, **extra)
    process = await smsbridge("run", *args, env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    return process, env


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await finish(process)


def signed(body: str, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": str(
            SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
        ),
    }


async def test_slack_requests_are_bounded_and_checked_before_parsing(
    served: Served, tmp_path: Path
) -> None:
    process, env = await running(served, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as http:
            huge = b"a=1&" * 5_000_000  # 20 MB, unsigned
            declared = await http.post("/slack/events", content=huge)
            assert declared.status_code == 413

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused at the limit
                for _ in range(100):
                    yield b"a=1&" * 1000

            plausible = {
                "X-Slack-Request-Timestamp": str(int(time.time())),
                "X-Slack-Signature": "v0=" + "0" * 64,
            }
            streamed = await http.post("/slack/events", content=chunks(), headers=plausible)
            assert streamed.status_code == 413

            unsigned = await http.post("/slack/events", content=b"command=/sms&text=help")
            assert unsigned.status_code == 401
            odd_stamp = await http.post(
                "/slack/events",
                content=b"command=/sms",
                headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
            )
            assert odd_stamp.status_code == 400
            not_utf8 = await http.post(
                "/slack/events",
                content=b"\xff\xfe\xfd",
                headers={
                    "X-Slack-Request-Timestamp": str(int(time.time())),
                    "X-Slack-Signature": "v0=00",
                },
            )
            assert not_utf8.status_code == 400
            forged = "command=%2Fsms&text=help&user_id=U0X&channel_id=C0OPS"
            bad_signature = await http.post(
                "/slack/events",
                content=forged,
                headers={**signed(forged), "X-Slack-Signature": "v0=" + "0" * 64},
            )
            assert bad_signature.status_code == 401
            # After all that, a real command is still acknowledged.
            body = urlencode(
                {
                    "command": "/sms",
                    "text": "help",
                    "user_id": "U0ALICE",
                    "channel_id": "C0OPS",
                    "response_url": "http://127.0.0.1:9/respond",
                }
            )
            real = await http.post("/slack/events", content=body, headers=signed(body))
            assert real.status_code == 200
            metrics = (await http.get("/metrics")).text
            assert 'smsbridge_http_rejected_total{cause="too_large"} 2.0' in metrics
            assert 'smsbridge_http_rejected_total{cause="bad_signature"} 1.0' in metrics
    finally:
        code, out, err = await stop(process)
    assert code == 0, err
    assert "Traceback" not in err + out
    assert len(huge) > MAX_BODY


async def test_idle_and_half_sent_connections_are_closed(served: Served, tmp_path: Path) -> None:
    process, env = await running(served, tmp_path)
    port = int(env["PORT"])
    try:

        async def closed_by_server(first_bytes: bytes) -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(first_bytes)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + 10)
            writer.close()
            assert data == b""  # closed without an answer
            return time.monotonic() - started

        idle, half = await asyncio.gather(
            closed_by_server(b""),
            closed_by_server(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        )
        assert idle <= HEADER_TIMEOUT + 5
        assert half <= HEADER_TIMEOUT + 5
    finally:
        code, _, err = await stop(process)
    assert code == 0, err


async def test_a_flood_of_connections_is_answered_503_and_the_bridge_goes_on(
    served: Served, tmp_path: Path
) -> None:
    process, env = await running(served, tmp_path)
    port = int(env["PORT"])
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 10)
        assert b" 503 " in answer
        writer.close()
        for _, idle in held:
            idle.close()
        held.clear()
        # The bridge itself was never held up: an SMS still arrives.
        served.provider.add("61409560857", "during the flood")
        await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    finally:
        for _, idle in held:
            idle.close()
        code, _, err = await stop(process)
    assert code == 0, err


async def test_server_errors_are_json_lines_without_tracebacks(
    served: Served, tmp_path: Path
) -> None:
    process, env = await running(served, tmp_path, "--log-format", "json")
    port = int(env["PORT"])
    try:
        for _ in range(3):  # garbage on the wire, three times: logged once
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
        # A client that goes away in the middle of its body.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            f"X-Slack-Request-Timestamp: {int(time.time())}\r\nX-Slack-Signature: v0=00\r\n\r\n"
        )
        writer.write(head.encode() + b"a" * 10)
        await writer.drain()
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        code, _, err = await stop(process)
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line JSON
    assert not any("exception" in line for line in lines)
    invalid = [line for line in lines if "Invalid HTTP request" in line["message"]]
    assert len(invalid) == 1
    gone = [line for line in lines if "disconnected while sending" in line["message"]]
    assert len(gone) == 1
    assert "Traceback" not in err


async def test_ready_answers_a_fixed_cause_never_the_error_text(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path)
    served.provider.inject(Fault.ECHO_FORM, times=10_000)  # an error page echoing the password
    process = await smsbridge("run", env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as http:
            while True:
                try:
                    answer = await http.get("/readyz")
                except httpx.TransportError:
                    answer = None
                if answer is not None and "provider_unavailable" in answer.text:
                    break
                assert process.returncode is None
                await asyncio.sleep(0.05)
            assert answer.status_code == 503
            assert answer.json() == {
                "status": "not ready",
                "reason": "provider_unavailable",
                "causes": ["provider_unavailable"],
            }
            metrics = (await http.get("/metrics")).text
    finally:
        code, out, err = await stop(process)
    assert code == 0, err
    assert PASSWORD not in err + out + metrics


async def test_console_logs_escape_control_characters_from_the_gateway(
    served: Served, tmp_path: Path
) -> None:
    served.provider.bad_records.append(
        {"from": "61\n2026-01-01 00:00:00 INFO forged line\x1b[31m", "documentId": "a\x1b[2J"}
    )
    served.provider.add("61409560857", "a good one")
    process, _ = await running(served, tmp_path)
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    code, _, err = await stop(process)
    assert code == 0, err
    assert "\x1b" not in err
    assert not any(line.startswith("2026-01-01 00:00:00 INFO forged") for line in err.splitlines())
    assert "kept in the ledger as invalid" in err


async def test_sqlite_files_are_readable_by_their_owner_only(
    served: Served, tmp_path: Path
) -> None:
    old = os.umask(0o022)  # the usual umask, which would make them 0644
    try:
        process, env = await running(served, tmp_path)
        served.provider.add("61409560857", "written")
        await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
        database = env["SMSBRIDGE_DATABASE_URL"].removeprefix("sqlite:///")
        modes = {
            suffix: stat.S_IMODE(os.stat(database + suffix).st_mode)
            for suffix in ("", "-wal", "-shm", ".lock")
        }
    finally:
        os.umask(old)
        code, _, err = await stop(process)
    assert code == 0, err
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600, ".lock": 0o600}


async def test_a_read_only_database_stops_run_with_exit_2(served: Served, tmp_path: Path) -> None:
    env = bridge_env(served, tmp_path)
    assert (await finish(await smsbridge("db", "upgrade", env=env)))[0] == 0
    path = env["SMSBRIDGE_DATABASE_URL"].removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    code, out, err = await finish(
        await smsbridge("run", env={**env, "SMSBRIDGE_DATABASE_URL": read_only})
    )
    assert code == 2
    assert "cannot write to the database" in err
    assert "readonly" in err
    assert "Traceback" not in err + out


@pytest.mark.postgres
@pytest.mark.parametrize("missing", ["database", "role"])
async def test_a_missing_postgres_database_or_role_exits_2_with_the_fix(
    served: Served, tmp_path: Path, missing: str
) -> None:
    url = postgres_url()
    assert url is not None
    base, _ = url.rsplit("/", 1)
    if missing == "database":
        target = f"{base}/smsbridge_no_such_database"
    else:
        target = base.replace("://postgres@", "://no_such_role:s3cretpw@") + "/test"
    env = bridge_env(served, tmp_path, SMSBRIDGE_DATABASE_URL=target)
    for command in (("run",), ("db", "upgrade")):
        code, out, err = await finish(await smsbridge(*command, env=env))
        assert code == 2, (command, err)
        assert "does not exist" in err
        assert "SMSBRIDGE_DATABASE_URL" in err
        assert "Traceback" not in err + out
        assert "s3cretpw" not in err + out


async def test_check_never_prints_a_password_in_a_url(served: Served, tmp_path: Path) -> None:
    host = served.provider_url.removeprefix("http://")
    env = bridge_env(
        served,
        tmp_path,
        SMSBRIDGE_DATABASE_URL="postgresql://smsbridge:dbs3cret@127.0.0.1:1/none",
        SMSBRIDGE_PROVIDER__URL=f"http://proxyuser:proxys3cret@{host}",
    )
    code, out, err = await finish(await smsbridge("check", env=env))
    assert code == 1
    assert "dbs3cret" not in out + err
    assert "proxys3cret" not in out + err
    assert "smsbridge:***@127.0.0.1:1" in out
