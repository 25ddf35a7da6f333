"""What every benchmark needs: the stand-ins and the bridge as separate processes, and readings
of a process's CPU time and memory from /proc.

A benchmark must run without the test suite, so this is its own small module rather than an
import from `tests/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

USERNAME, PASSWORD = "demo@reseller", "demo password & more"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def spawn(
    *args: str,
    env: dict[str, str] | None = None,
    program: Sequence[str] = ("-m", "smsbridge"),
    wrap: Sequence[str] = (),
) -> asyncio.subprocess.Process:
    """`smsbridge ARGS` (or another Python program) with its output discarded; `wrap` runs it
    through another command (`ip netns exec NAME`), which must exec it in its own place."""
    return await asyncio.create_subprocess_exec(
        *wrap,
        sys.executable,
        *program,
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def until_answers(
    url: str,
    process: asyncio.subprocess.Process,
    ok: int = 200,
    within: float = 30,
    verify: ssl.SSLContext | bool = True,
) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(verify=verify) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise SystemExit(f"{url}: the process exited with {process.returncode}")
            try:
                if (await client.get(url)).status_code == ok:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.01)
    raise SystemExit(f"{url} never answered")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


@dataclass
class Usage:
    """One process's CPU seconds (user + system) and memory, read from /proc."""

    cpu_seconds: float
    rss_mib: float
    peak_rss_mib: float

    @classmethod
    def of(cls, pid: int) -> Usage:
        with open(f"/proc/{pid}/stat") as stat:
            # fields after the command name (which may hold spaces) start at its closing ')'
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        memory: dict[str, float] = {}
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    memory[name] = int(value.split()[0]) / 1024
        return cls(cpu, memory["VmRSS"], memory["VmHWM"])


@dataclass(frozen=True)
class SlackPlace:
    """Where the Slack stand-in runs: on loopback, or (bench/network.py) in a network namespace
    behind a slow link, serving HTTPS with a certificate of its own."""

    host: str = "127.0.0.1"
    wrap: tuple[str, ...] = ()  # the command that runs it there
    cert: str | None = None  # PEM certificate (and CA) for HTTPS; its key beside it
    key: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.cert) if self.cert else True

    def client_env(self) -> dict[str, str]:
        """What a client process needs to trust the certificate (OpenSSL reads it)."""
        return {"SSL_CERT_FILE": self.cert} if self.cert else {}


LOOPBACK = SlackPlace()


@dataclass
class Standins:
    """The provider and Slack stand-ins, each its own process, and a client to drive them."""

    provider_url: str
    slack_url: str
    http: httpx.AsyncClient
    slack_place: SlackPlace = LOOPBACK
    slack_pid: int = 0  # the Slack stand-in's process, for its CPU time
    added: list[str] = field(default_factory=list)
    seen: int = 0  # SMS posts read from the Slack stand-in so far

    async def add_many(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """SMS reach the gateway: {"from", "text", "recipient", optional "timestamp"} each."""
        added: list[dict[str, Any]] = []
        for start in range(0, len(records), 5000):
            answer = await self.http.post(
                f"{self.provider_url}/_sim/messages", json=records[start : start + 5000]
            )
            added.extend(answer.json())
        self.added.extend(record["documentId"] for record in added)
        return added

    async def next_posts(
        self, count: int, within: float = 60, every: float = 0.0
    ) -> list[tuple[float, str, str]]:
        """The next `count` SMS posts, as (time, channel, id), waiting for them: asking again
        as soon as one more is posted, or (`every` > 0) every so often, so that a long drain
        is not slowed by the asking."""
        posts: list[tuple[float, str, str]] = []
        async with asyncio.timeout(within):
            while len(posts) < count:
                if every:
                    await asyncio.sleep(every)
                answer = await self.http.get(
                    f"{self.slack_url}/_sim/posts", params={"after": self.seen, "wait": 5}
                )
                batch = [(float(at), str(ch), str(ident)) for at, ch, ident in answer.json()]
                self.seen += len(batch)
                posts.extend(batch)
        return posts

    async def exactly_once(self) -> None:
        """Every SMS added was posted, and none twice (raises SystemExit otherwise)."""
        posted: Counter[str] = Counter()
        while True:
            answer = await self.http.get(
                f"{self.slack_url}/_sim/posts", params={"after": sum(posted.values())}
            )
            batch = answer.json()
            if not batch:
                break
            posted.update(str(post[2]) for post in batch)
        if posted != Counter(self.added):
            lost = set(self.added) - set(posted)
            twice = [ident for ident, n in posted.items() if n > 1]
            raise SystemExit(f"not exactly once: {len(lost)} lost, {len(twice)} posted twice")


@asynccontextmanager
async def standins(
    channels: Sequence[str],
    *,
    post_interval: float,
    post_burst: int,
    capacity: int = 10_000,
    slack_place: SlackPlace = LOOPBACK,
) -> AsyncIterator[Standins]:
    ports = {name: free_port() for name in ("provider", "slack")}
    provider = await spawn(
        "sim", "provider", "--port", str(ports["provider"]), "--capacity", str(capacity)
    )
    tls = ["--tls-cert", slack_place.cert or "", "--tls-key", slack_place.key or ""]
    slack = await spawn(
        "sim",
        "slack",
        "--host",
        slack_place.host,
        "--port",
        str(ports["slack"]),
        "--post-interval",
        str(post_interval),
        "--post-burst",
        str(post_burst),
        *(tls if slack_place.cert else []),
        wrap=slack_place.wrap,
    )
    provider_url = f"http://127.0.0.1:{ports['provider']}"
    slack_url = f"{slack_place.scheme}://{slack_place.host}:{ports['slack']}"
    verify = slack_place.verify()
    try:
        # Idle connections are dropped before the servers' 5 s keep-alive ends: reusing one
        # the server is closing at that moment fails a request with "Server disconnected".
        limits = httpx.Limits(max_connections=200, keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=60, limits=limits, verify=verify) as http:
            await until_answers(f"{slack_url}/_sim/posts", slack, verify=verify)
            await until_answers(f"{provider_url}/docs", provider, ok=404)
            await http.post(
                f"{slack_url}/_sim/channels",
                json=[{"id": channel, "name": channel.lower()} for channel in channels],
            )
            yield Standins(provider_url, slack_url, http, slack_place, slack.pid)
    finally:
        await stop(provider)
        await stop(slack)


def bridge_env(
    rig: Standins, database_url: str, routes: dict[str, str], port: int, **extra: str
) -> dict[str, str]:
    """`smsbridge run`'s environment: its defaults but for these, and none of ours leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSBRIDGE_", "SLACK_"))}
    env |= {
        "SMSBRIDGE_PROVIDER__URL": rig.provider_url,
        "SMSBRIDGE_PROVIDER__USERNAME": USERNAME,
        "SMSBRIDGE_PROVIDER__PASSWORD": PASSWORD,
        "SLACK_BOT_TOKEN": "xoxb-sim-token",
        "SLACK_SIGNING_SECRET": "bench",
        "SMSBRIDGE_SLACK__API_URL": f"{rig.slack_url}/api/",
        "SMSBRIDGE_DATABASE_URL": database_url,
        "SMSBRIDGE_ROUTES": json.dumps(routes),
        "PORT": str(port),
    }
    return env | rig.slack_place.client_env() | extra


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}
