"""Drain a backlog of SMS across channels with per-channel Slack limits; measure and verify.

    .venv/bin/python bench/backlog.py [--sms 20000] [--channels 10] [--interval 0.02] [--pace 0.02]
                                      [--burst 4]

The real bridge (poller, ledger on a SQLite file, one worker per channel) runs in this process
against the stand-ins over loopback HTTP. The Slack stand-in answers 429 to any post to a channel
beyond its token bucket (`--interval` per post, `--burst` at once). Checked, not just timed:
every SMS posted exactly once, and no post to a channel before a 429's Retry-After elapsed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from pydantic import SecretStr

from smsbridge.bridge import Bridge
from smsbridge.config import ProviderSettings, Settings, SlackSettings
from smsbridge.sim.provider import ProviderSim
from smsbridge.sim.serve import serve
from smsbridge.sim.slack import SlackSim
from smsbridge.stopping import StopSignal


async def run(
    count: int, channels: int, interval: float, pace: float, burst: int = 4
) -> dict[str, float]:
    provider = ProviderSim(capacity=count + 10)
    slack = SlackSim(post_interval=interval, post_burst=burst)
    lines = [f"6141100{index:04d}" for index in range(channels)]
    routes = {line: f"C0BENCH{index}" for index, line in enumerate(lines)}
    for index in range(channels):
        slack.add_channel(f"C0BENCH{index}", f"bench-{index}", member=True)
    start_second = int(time.time()) - 3600
    for i in range(count):  # ~40 SMS a second over the last hour or so
        provider.add(
            f"6140956{i % 500:04d}",
            f"backlog sms {i}",
            recipient=lines[i % channels],
            timestamp=start_second + i // 40,
        )
    expected = Counter(sms.document_id for sms in provider.messages)
    async with serve(provider.app()) as provider_url, serve(slack.app()) as slack_url:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                provider=ProviderSettings(
                    url=provider_url,
                    username="demo@reseller",
                    password=SecretStr("demo password & more"),
                ),
                slack=SlackSettings(
                    bot_token=SecretStr(slack.token),
                    signing_secret=SecretStr("x"),
                    api_url=f"{slack_url}/api/",
                    post_interval=pace,
                    post_burst=burst,
                ),
                database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
                poll_interval=1.0,
                initial_lookback=2 * 3600,
                routes=routes,
            )
            stop = StopSignal()
            bridge = Bridge.build(settings, stop, lambda error: None)
            await bridge.start()
            [lane] = bridge.lanes
            began = time.perf_counter()
            while True:
                await lane.keeper.renew()
                await lane.poller.run_job()
                await lane.delivery.idle()
                if await bridge.store.ledger.backlog_size(lane.account.name) == 0:
                    counts = await bridge.store.ledger.counts(lane.account.name)
                    if counts["posted"] == count:
                        break
            elapsed = time.perf_counter() - began
            stop.set()
            await lane.keeper.release()
            await bridge.aclose()
    posted = Counter(slack.document_ids())
    assert posted == expected, "not every SMS was posted exactly once"
    posts = [
        (t, ch, status) for t, method, ch, status in slack.calls if method == "chat.postMessage"
    ]
    limited = [(t, ch) for t, ch, status in posts if status == 429]
    for at, channel in limited:  # Retry-After is whole seconds, at least 1
        assert not [t for t, ch, _ in posts if ch == channel and at < t < at + 1.0], (
            "Retry-After ignored"
        )
    return {
        "sms": count,
        "channels": channels,
        "seconds": elapsed,
        "sms_per_second": count / elapsed,
        "rate_limited": len(limited),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument(
        "--interval", type=float, default=0.02, help="the stand-in's per-channel limit"
    )
    parser.add_argument("--pace", type=float, default=0.02, help="the bridge's per-channel pacing")
    parser.add_argument("--burst", type=int, default=4, help="posts at once, both sides")
    args = parser.parse_args()
    result = asyncio.run(run(args.sms, args.channels, args.interval, args.pace, args.burst))
    for key, value in result.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
