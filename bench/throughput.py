"""Drain a backlog as fast as the bridge can, beside the naive reference loop on the same
stand-ins: throughput, CPU time per SMS, memory and start-up.

    .venv/bin/python bench/throughput.py [--sms 20000] [--channels 10] [--database sqlite]
                                         [--runs 1] [--no-naive]

Every part is its own process: the provider stand-in holding the backlog, the Slack stand-in
without rate limits, and the real `smsbridge run` with `SMSBRIDGE_SLACK__POST_INTERVAL=0` (its
defaults otherwise, but for ports, routes and the database: a SQLite file, or a fresh database
on the local PostgreSQL with `--database postgres`). Then `bench/naive.py` (a stdlib loop:
fetch a page, post each SMS, commit one SQLite row per SMS) drains the same backlog on fresh
stand-ins. Throughput is counted from the first post to the last, on the Slack stand-in's
clock; CPU time and memory are read from /proc for the bridge's process alone.

Checked, not just timed: every SMS added was posted exactly once, by each contender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from standins import (
    LOOPBACK,
    SlackPlace,
    Standins,
    Usage,
    bridge_env,
    free_port,
    spawn,
    standins,
    stop,
    until_answers,
)

from smsbridge.pipeline.delivery import CATCH_UP_NOTICE_AT

NAIVE = Path(__file__).resolve().with_name("naive.py")
# beside a drain: (stand-ins, the bridge's URL, set when the drain is over) -> its figures
Alongside = Callable[[Standins, str, asyncio.Event], Coroutine[Any, Any, dict[str, Any]]]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PER_SECOND = 40  # SMS per gateway second in the backlog: pages of 100 always move on


def channels(count: int) -> tuple[list[str], dict[str, str]]:
    lines = [f"6141100{index:04d}" for index in range(count)]
    names = [f"C0BENCH{index}" for index in range(count)]
    return names, dict(zip(lines, names, strict=True))


def backlog(count: int, routes: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """`count` SMS over the last count/40 seconds, round-robin over the lines; and `since`."""
    lines = list(routes)
    first = int(time.time()) - count // PER_SECOND - 5
    records = [
        {
            "from": f"6140956{index % 500:04d}",
            "text": f"backlog sms {index}: running late, be there in 10",
            "recipient": lines[index % len(lines)],
            "timestamp": first + index // PER_SECOND,
        }
        for index in range(count)
    ]
    return records, first - 1


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A fresh, empty database for one run."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    import asyncpg

    name = f"smsbridge_bench_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drained(rig: Standins, count: int, within: float) -> tuple[float, float]:
    """Wait until `count` SMS are posted: (first post, last post) on the stand-in's clock."""
    posts = await rig.next_posts(count, within=within, every=0.25)
    return posts[0][0], posts[-1][0]


async def bridge_run(
    count: int,
    channel_count: int,
    kind: str,
    slack_limit: bool = False,
    slack_place: SlackPlace = LOOPBACK,
    alongside: Alongside | None = None,
) -> dict[str, Any]:
    """One drain of `count` SMS. `alongside` (bench/slash.py) runs beside it, from the bridge's
    first answer on, and is told when the drain is over; its figures join the run's."""
    names, routes = channels(channel_count)
    records, since = backlog(count, routes)
    # Slack's limit: one post per second per channel, bursts of 4, on both sides (the bridge's
    # defaults); otherwise no limit anywhere.
    interval, burst = (1.0, 4) if slack_limit else (0.0, 1)
    pacing = {} if slack_limit else {"SMSBRIDGE_SLACK__POST_INTERVAL": "0"}
    async with (
        standins(
            names,
            post_interval=interval,
            post_burst=burst,
            capacity=count + 10,
            slack_place=slack_place,
        ) as rig,
        database(kind) as url,
    ):
        start_up = await started(rig, kind, routes) if slack_place is LOOPBACK else None
        await rig.add_many(records)
        port = free_port()
        env = bridge_env(
            rig,
            url,
            routes,
            port,
            SMSBRIDGE_INITIAL_LOOKBACK=str(int(time.time()) - since + 60),
            **pacing,
        )
        bridge = await spawn("run", env=env)
        try:
            # ready once its first poll has read the whole backlog into the ledger
            await until_answers(f"http://127.0.0.1:{port}/readyz", bridge, within=count / 100 + 30)
            samples: list[tuple[int, Usage]] = []

            slack_samples: list[tuple[int, Usage]] = []

            async def sample() -> None:  # CPU and memory against progress, every 0.2 s
                while True:
                    samples.append((rig.seen, Usage.of(bridge.pid)))
                    slack_samples.append((rig.seen, Usage.of(rig.slack_pid)))
                    await asyncio.sleep(0.2)

            sampler = asyncio.create_task(sample())
            over = asyncio.Event()
            side = alongside(rig, f"http://127.0.0.1:{port}", over) if alongside else None
            beside = asyncio.create_task(side) if side else None
            first, last = await drained(rig, count, within=count / 50 + 60)
            sampler.cancel()
            end, slack_end = Usage.of(bridge.pid), Usage.of(rig.slack_pid)
            over.set()
            extra = await beside if beside else {}
            await rig.exactly_once()
            stats = (await rig.http.get(f"{rig.slack_url}/_sim/stats")).json()
        finally:
            await stop(bridge)
    # CPU from the first sample with posts under way, so start-up is not charged to the drain
    begun = next(((seen, usage) for seen, usage in samples if seen > 0), samples[-1])
    slack_begun = next(((seen, usage) for seen, usage in slack_samples if seen > 0), samples[-1])
    # memory after the first tenth, for whether it stays flat as the ledger grows
    settled = [usage.rss_mib for seen, usage in samples if seen >= count // 10] or [end.rss_mib]
    return (
        {
            "sms_per_second": (count - 1) / (last - first),
            "drain_seconds": last - first,
            "cpu_ms_per_sms": 1000 * (end.cpu_seconds - begun[1].cpu_seconds) / (count - begun[0]),
            # the Slack stand-in's share of the same machine: what it costs to take each post
            "slack_standin_cpu_ms_per_sms": 1000
            * (slack_end.cpu_seconds - slack_begun[1].cpu_seconds)
            / (count - slack_begun[0]),
            "peak_rss_mib": end.peak_rss_mib,
            "rss_growth_mib": max(settled) - min(settled),
            "rate_limited": stats["rate_limited"],  # posts Slack answered 429
            "early_posts": stats["early_posts"],  # posts before a Retry-After had passed
            "slack_connections": stats["connections"],  # connections its Web API calls came over
        }
        | ({} if start_up is None else {"start_up_seconds": start_up})
        | extra
    )


async def started(rig: Standins, kind: str, routes: dict[str, str]) -> float:
    """Seconds from `smsbridge run` to its /readyz answering 200 (a first poll done), on a new
    database with nothing waiting at the gateway."""
    async with database(kind) as url:
        port = free_port()
        launched = time.perf_counter()
        bridge = await spawn("run", env=bridge_env(rig, url, routes, port))
        try:
            await until_answers(f"http://127.0.0.1:{port}/readyz", bridge)
            return time.perf_counter() - launched
        finally:
            bridge.terminate()
            await bridge.wait()


async def naive_run(
    count: int, channel_count: int, slack_place: SlackPlace = LOOPBACK
) -> dict[str, Any]:
    names, routes = channels(channel_count)
    records, since = backlog(count, routes)
    async with standins(
        names, post_interval=0, post_burst=1, capacity=count + 10, slack_place=slack_place
    ) as rig:
        await rig.add_many(records)
        with tempfile.TemporaryDirectory() as tmp:
            naive = await spawn(
                rig.provider_url,
                f"{rig.slack_url}/api/",
                str(Path(tmp) / "naive.db"),
                json.dumps(routes),
                str(since),
                program=(str(NAIVE),),
                env=os.environ | slack_place.client_env(),
            )
            try:
                # its CPU: what the only child reaped meanwhile (it) used, from /proc's view
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                first, last = await drained(rig, count, within=count / 2 + 60)
                await naive.wait()
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
            finally:
                await stop(naive)
        await rig.exactly_once()
        stats = (await rig.http.get(f"{rig.slack_url}/_sim/stats")).json()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "sms_per_second": (count - 1) / (last - first),
        "drain_seconds": last - first,
        "cpu_ms_per_sms": 1000 * cpu / count,  # its start-up included: 2-3% at 20,000
        "slack_connections": stats["connections"],
    }


def floor_seconds(count: int, channel_count: int, burst: int = 4) -> float:
    """The shortest drain Slack's limit allows: one post a second per channel after the first
    burst, counting the bridge's one catch-up notice in a channel whose backlog earns it."""
    per_channel = count / channel_count
    posts = per_channel + (1 if per_channel >= CATCH_UP_NOTICE_AT else 0)
    return max(0.0, posts - burst)


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of each figure over the runs."""
    return {
        key: {
            "median": statistics.median(run[key] for run in runs),
            "min": min(run[key] for run in runs),
            "max": max(run[key] for run in runs),
        }
        for key in runs[0]
    }


async def run(
    count: int, channel_count: int, kind: str, runs: int, naive: bool, slack_limit: bool
) -> dict[str, Any]:
    bridge_runs, naive_runs = [], []
    for _ in range(runs):  # interleaved, so a slow spell of the machine hits both
        bridge_runs.append(await bridge_run(count, channel_count, kind, slack_limit))
        if naive and not slack_limit:
            naive_runs.append(await naive_run(count, channel_count))
    result: dict[str, Any] = {
        "sms": count,
        "channels": channel_count,
        "database": kind,
        "runs": runs,
        "slack_limit": slack_limit,
        "bridge": spread(bridge_runs),
        "exactly_once": True,
    }
    if slack_limit:
        floor = floor_seconds(count, channel_count)
        result["floor_seconds"] = floor
        result["over_floor"] = spread(
            [{"share": run["drain_seconds"] / floor - 1 if floor else 0.0} for run in bridge_runs]
        )["share"]
    elif naive:
        result["naive"] = spread(naive_runs)
        result["ratio_to_naive"] = spread(
            [
                {"sms_per_second": ours["sms_per_second"] / theirs["sms_per_second"]}
                for ours, theirs in zip(bridge_runs, naive_runs, strict=True)
            ]
        )["sms_per_second"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-naive", dest="naive", action="store_false")
    parser.add_argument(
        "--slack-limit",
        action="store_true",
        help="the Slack stand-in at Slack's limit (1/s per channel, bursts of 4): drain time "
        "against its floor, 429s and posts before a Retry-After (no naive loop)",
    )
    args = parser.parse_args()
    result = asyncio.run(
        run(args.sms, args.channels, args.database, args.runs, args.naive, args.slack_limit)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
