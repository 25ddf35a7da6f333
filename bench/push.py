"""Push and polling latency, burst pacing and a push storm, measured as a user feels them.

    .venv/bin/python bench/push.py [--sms 200] [--polled 100] [--bursts 5] [--storm 500]

Every part is its own process: the provider stand-in (`smsbridge sim provider`), the Slack
stand-in (`smsbridge sim slack`, limited as Slack is: one post per second per channel, bursts of
4) and the real `smsbridge run`, with its defaults but for the ports, routes and database. This
script plays the gateway: it adds each SMS to the provider stand-in, pushes it to the bridge (or
not, for polling), and reads from the Slack stand-in when it was posted, on the same clock.

1. push -> posted: SMS one at a time, round-robin over 10 channels (so pacing never waits);
2. polling only (`SMSBRIDGE_POLL_INTERVAL=1`, no push URL), SMS one at a time at random moments;
   the reference for 1: the ratio of the two medians is the gain of pushes;
3. bursts of 5 SMS pushed at once to one channel: the last post after the first push;
4. a storm: `--storm` pushes within 5 s over 10 channels: how fast the push URL answers, then
   every SMS posted exactly once.

Checked, not just timed: each phase ends by comparing every SMS added with every SMS posted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from standins import (
    Standins,
    bridge_env,
    free_port,
    spawn,
    standins,
    stop,
    summary,
    until_answers,
)

TOKEN = "bench-push-token-" + "x" * 24
LINES = [f"6141100{index:04d}" for index in range(10)]
CHANNELS = [f"C0BENCH{index}" for index in range(10)]


@dataclass
class Rig(Standins):
    """The stand-ins and one bridge, each a process, and clients to drive them."""

    bridge_url: str = ""

    async def add(self, line: str, text: str, sender: str = "61409560857") -> dict[str, Any]:
        """An SMS reaches the gateway (the provider stand-in stamps it now)."""
        [record] = await self.add_many([{"from": sender, "text": text, "recipient": line}])
        return record

    async def push(self, record: dict[str, Any]) -> float:
        """The gateway pushes `record` to the bridge; returns how long the answer took."""
        query = {
            "MOMessageId": record["documentId"],
            "timestamp": str(record["timestamp"]),
            "from": record["from"],
            "to": record["recipient"],
            "text": record["text"],
        }
        began = time.perf_counter()
        answer = await self.http.get(f"{self.bridge_url}/provider/push/{TOKEN}", params=query)
        took = time.perf_counter() - began
        answer.raise_for_status()
        return took


@asynccontextmanager
async def rig(push: bool, poll_interval: float) -> AsyncIterator[Rig]:
    async with standins(CHANNELS, post_interval=1, post_burst=4) as base:
        port = free_port()
        extra = {"SMSBRIDGE_POLL_INTERVAL": str(poll_interval)}
        if push:
            extra["SMSBRIDGE_PUSH__TOKEN"] = TOKEN
        with tempfile.TemporaryDirectory() as tmp:
            database = f"sqlite:///{Path(tmp) / 'bench.db'}"
            routes = dict(zip(LINES, CHANNELS, strict=True))
            bridge = await spawn("run", env=bridge_env(base, database, routes, port, **extra))
            try:
                bridge_url = f"http://127.0.0.1:{port}"
                await until_answers(f"{bridge_url}/readyz", bridge)
                yield Rig(base.provider_url, base.slack_url, base.http, bridge_url=bridge_url)
                bridge.terminate()
                await bridge.wait()
            finally:
                await stop(bridge)


async def pushed_one_at_a_time(rig: Rig, count: int) -> list[float]:
    latencies = []
    for index in range(count):
        record = await rig.add(LINES[index % len(LINES)], f"pushed {index}")
        pushed_at = time.time()
        await rig.push(record)
        [(posted_at, _, _)] = await rig.next_posts(1)
        latencies.append(posted_at - pushed_at)
        await asyncio.sleep(0.05)
    return latencies


async def bursts(rig: Rig, count: int, size: int = 5) -> list[float]:
    spans = []
    for index in range(count):
        await asyncio.sleep(size)  # the channel's bucket fills again (one post a second)
        records = [await rig.add(LINES[0], f"burst {index}.{n}") for n in range(size)]
        first_push = time.time()
        for record in records:
            await rig.push(record)
        posts = await rig.next_posts(size)
        spans.append(max(at for at, _, _ in posts) - first_push)
    return spans


class LeanClient:
    """Keep-alive HTTP/1.1 GETs over a pool of plain sockets: a load generator that costs far
    less CPU than a full client, so on a 2-core machine the storm measures the bridge, not
    the client. Only for our own endpoint's short answers (Content-Length, no chunks)."""

    def __init__(self, url: str, connections: int = 64) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(connections)

    async def get(self, target: str) -> tuple[int, float]:
        """(status, seconds from the request's first byte to its answer's last)."""
        async with self._slots:
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(*self._address)
            began = time.perf_counter()
            writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            took = time.perf_counter() - began
            self._idle.append((reader, writer))
            return int(head.split(b" ", 2)[1]), took

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()


async def storm(rig: Rig, count: int, seconds: float = 5.0) -> tuple[list[float], float]:
    """`count` SMS reach the gateway within `seconds`, each pushed as it arrives (so polling,
    which goes on, finds at most the few whose push is on its way). They are added to the
    gateway stand-in in tenths of a second, ten at a time."""
    client = LeanClient(rig.bridge_url)
    began = time.perf_counter()
    per_tick = max(1, count // round(seconds * 10))

    async def push(record: dict[str, Any]) -> float:
        query = httpx.QueryParams(
            {
                "MOMessageId": record["documentId"],
                "timestamp": str(record["timestamp"]),
                "from": record["from"],
                "to": record["recipient"],
                "text": record["text"],
            }
        )
        status, took = await client.get(f"/provider/push/{TOKEN}?{query}")
        if status != 200:
            raise SystemExit(f"a push was answered {status}")
        return took

    pushes: list[asyncio.Task[float]] = []
    for first in range(0, count, per_tick):
        tick_at = began + seconds * first / count
        await asyncio.sleep(max(0.0, tick_at - time.perf_counter()))
        batch = [
            {"from": f"614{index:08d}", "text": f"storm {index}", "recipient": LINES[index % 10]}
            for index in range(first, min(count, first + per_tick))
        ]
        for position, record in enumerate(await rig.add_many(batch)):
            pushes.append(asyncio.create_task(push_later(position / per_tick / 10, push, record)))
    answers = await asyncio.gather(*pushes)
    await client.aclose()
    await rig.next_posts(count, within=count / len(CHANNELS) + 60)
    return list(answers), time.perf_counter() - began


async def push_later(
    delay: float, push: Callable[[dict[str, Any]], Awaitable[float]], record: dict[str, Any]
) -> float:
    """Spread the pushes of one tick over it, as SMS arriving one by one would be."""
    await asyncio.sleep(delay)
    return await push(record)


async def polled_one_at_a_time(rig: Rig, count: int, rng: random.Random) -> list[float]:
    latencies = []
    for index in range(count):
        await asyncio.sleep(rng.uniform(0, 1))  # SMS arrive at any moment of a poll interval
        added_at = time.time()
        await rig.add(LINES[index % len(LINES)], f"polled {index}")
        [(posted_at, _, _)] = await rig.next_posts(1)
        latencies.append(posted_at - added_at)
    return latencies


async def run(sms: int, polled: int, burst_count: int, storm_size: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with rig(push=True, poll_interval=5) as pushing:
        result["push_to_post_s"] = summary(await pushed_one_at_a_time(pushing, sms))
        result["burst_of_5_last_post_s"] = summary(await bursts(pushing, burst_count))
        answers, drained = await storm(pushing, storm_size)
        result["storm_push_answer_s"] = summary(answers)
        result["storm_drained_s"] = drained
        await pushing.exactly_once()
    async with rig(push=False, poll_interval=1) as polling:
        result["poll_to_post_s"] = summary(
            await polled_one_at_a_time(polling, polled, random.Random(10))
        )
        await polling.exactly_once()
    result["push_gain_p50"] = result["poll_to_post_s"]["p50"] / result["push_to_post_s"]["p50"]
    result["counts"] = {"sms": sms, "polled": polled, "bursts": burst_count, "storm": storm_size}
    result["exactly_once"] = True
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=200, help="pushed SMS, one at a time")
    parser.add_argument("--polled", type=int, default=100, help="polled SMS, one at a time")
    parser.add_argument("--bursts", type=int, default=5, help="bursts of 5 SMS to one channel")
    parser.add_argument("--storm", type=int, default=500, help="pushes within 5 seconds")
    args = parser.parse_args()
    result = asyncio.run(run(args.sms, args.polled, args.bursts, args.storm))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
