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
    *args: str, env: dict[str, str] | None = None, program: Sequence[str] = ("-m", "smsbridge")
) -> asyncio.subprocess.Process:
    """`smsbridge ARGS` (or another Python program) with its output discarded."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *program,
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def until_answers(
    url: str, process: asyncio.subprocess.Process, ok: int = 200, within: float = 30
) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
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


@dataclass
class Standins:
    """The provider and Slack stand-ins, each its own process, and a client to drive them."""

    provider_url: str
    slack_url: str
    http: httpx.AsyncClient
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
    channels: Sequence[str], *, post_interval: float, post_burst: int, capacity: int = 10_000
) -> AsyncIterator[Standins]:
    ports = {name: free_port() for name in ("provider", "slack")}
    provider = await spawn(
        "sim", "provider", "--port", str(ports["provider"]), "--capacity", str(capacity)
    )
    slack = await spawn(
        "sim",
        "slack",
        "--port",
        str(ports["slack"]),
        "--post-interval",
        str(post_interval),
        "--post-burst",
        str(post_burst),
    )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:
            await until_answers(f"{urls['slack']}/_sim/posts", slack)
            await until_answers(f"{urls['provider']}/docs", provider, ok=404)
            await http.post(
                f"{urls['slack']}/_sim/channels",
                json=[{"id": channel, "name": channel.lower()} for channel in channels],
            )
            yield Standins(urls["provider"], urls["slack"], http)
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
    return env | extra


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}
