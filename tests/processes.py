"""Run `smsbridge` as a real subprocess against stand-ins served by the test's event loop."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx

from conftest import INBOX, OPS, OPS_LINE, PASSWORD, USERNAME, Served
from smsbridge.store.store import Store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bridge_env(served: Served, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: none of the caller's SMSBRIDGE_/SLACK_ variables leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSBRIDGE_", "SLACK_"))}
    env.update(
        {
            "SMSBRIDGE_PROVIDER__URL": served.provider_url,
            "SMSBRIDGE_PROVIDER__USERNAME": USERNAME,
            "SMSBRIDGE_PROVIDER__PASSWORD": PASSWORD,
            "SLACK_BOT_TOKEN": served.slack.token,
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            "SMSBRIDGE_SLACK__API_URL": f"{served.slack_url}/api/",
            "SMSBRIDGE_SLACK__POST_INTERVAL": "0",
            "SMSBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
            "SMSBRIDGE_POLL_INTERVAL": "0.5",
            "SMSBRIDGE_INITIAL_LOOKBACK": "3600",
            "SMSBRIDGE_ROUTES": f'{{"{OPS_LINE}": "{OPS}", "*": "{INBOX}"}}',
            "PORT": str(free_port()),
            "COLUMNS": "200",  # rich wraps tables at 80 columns without a terminal
        }
    )
    env.update(extra)
    return env


async def smsbridge(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smsbridge",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_ready(port: str, process: asyncio.subprocess.Process) -> None:
    """Until /readyz says ready (a poll has succeeded); fails fast if the process dies."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"smsbridge exited early with {process.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


class TcpProxy:
    """A TCP relay to a server (the test's PostgreSQL) that a test can cut off and restore:
    the database "stops" for the bridge only, without touching the real server."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = free_port()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a stopped server does."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            self._pipes.discard(task)
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()

        pumps = {
            asyncio.create_task(pump(reader, upstream_writer)),
            asyncio.create_task(pump(upstream_reader, writer)),
        }
        try:  # either side closing ends the relay
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for running in pumps:
                running.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for side in (writer, upstream_writer):
                side.close()
            self._pipes.discard(task)


async def ledger_counts(env: dict[str, str]) -> dict[str, int]:
    """The ledger's rows per state, read from the database of a `smsbridge run` that stopped."""
    store = Store.open(env["SMSBRIDGE_DATABASE_URL"])
    try:
        return await store.ledger.counts(USERNAME)
    finally:
        await store.close()
