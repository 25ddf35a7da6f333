"""Over a real-looking network: the Slack stand-in serves HTTPS a round trip away.

    .venv/bin/python bench/network.py [--sms 2000] [--naive-sms 100] [--rtt 0.1] [--runs 1]

Loopback hides what a connection costs: here it is free, against slack.com it is a TCP round
trip plus a TLS handshake, per connection. This benchmark puts the Slack stand-in in a network
namespace of its own, joined to ours by two TUN devices and bench/delay_line.py, which holds
every packet for half of `--rtt` each way (what `tc netem` would do, had these machines' kernels
the module), and has it serve HTTPS with a certificate made for the run. The
provider stand-in and the database stay local. It needs root (or CAP_NET_ADMIN) and iproute2,
sets everything up itself and removes it at the end, even when interrupted; nothing but its own
two TUN devices (10.213.0.1 here, 10.213.0.2 there) is touched.

The bridge drains `--sms` over 10 channels (its defaults but for pacing, off, as in
bench/throughput.py); the naive loop (bench/naive.py: a new connection, so a new handshake, per
post) drains `--naive-sms` on fresh stand-ins over the same link. Reported for each: SMS/s, the
round trips one post costs its channel (drain time per post per channel over the RTT: 1.0 when
a post costs exactly one round trip), and how many connections their Slack calls came over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from standins import SlackPlace, stop
from throughput import bridge_run, naive_run, spread

HOST_ADDRESS, FAR_ADDRESS = "10.213.0.1", "10.213.0.2"
DELAY_LINE = Path(__file__).resolve().with_name("delay_line.py")


async def sh(*command: str, check: bool = True) -> None:
    done = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, error = await done.communicate()
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: {error.decode().strip()}")


@asynccontextmanager
async def slow_link(rtt: float) -> AsyncIterator[SlackPlace]:
    """A network namespace `rtt` seconds away, with a certificate for its address."""
    name = f"smsb{os.getpid()}"
    near, far = f"{name}a", f"{name}b"  # interface names: at most 15 characters
    inside = ("ip", "netns", "exec", name)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = str(Path(tmp) / "slack.pem"), str(Path(tmp) / "slack.key")
        await sh(
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={FAR_ADDRESS}",
            "-addext", f"subjectAltName=IP:{FAR_ADDRESS}", "-keyout", key, "-out", cert,
        )  # fmt: skip
        line: asyncio.subprocess.Process | None = None
        try:
            await sh("ip", "netns", "add", name)
            await sh("ip", "tuntap", "add", "dev", near, "mode", "tun")
            await sh("ip", "addr", "add", HOST_ADDRESS, "peer", FAR_ADDRESS, "dev", near)
            await sh(*inside, "ip", "tuntap", "add", "dev", far, "mode", "tun")
            await sh(*inside, "ip", "addr", "add", FAR_ADDRESS, "peer", HOST_ADDRESS, "dev", far)
            line = await asyncio.create_subprocess_exec(
                sys.executable,
                str(DELAY_LINE),
                near,
                name,
                far,
                str(rtt / 2),
                stdout=asyncio.subprocess.PIPE,
            )
            assert line.stdout is not None
            if (await line.stdout.readline()).strip() != b"ready":
                raise SystemExit("the delay line did not start (see its error above)")
            await sh("ip", "link", "set", near, "up")  # up once attached: no packet goes nowhere
            await sh(*inside, "ip", "link", "set", far, "up")
            await sh(*inside, "ip", "link", "set", "lo", "up")
            yield SlackPlace(host=FAR_ADDRESS, wrap=inside, cert=cert, key=key)
        finally:
            if line is not None:
                await stop(line)
            await sh("ip", "netns", "del", name, check=False)  # takes `far` with it
            await sh("ip", "link", "del", near, check=False)


def unavailable() -> str | None:
    """Why this benchmark cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "it needs root, for a network namespace and TUN devices"
    if not Path("/dev/net/tun").exists() or not shutil.which("ip"):
        return "it needs /dev/net/tun and iproute2 (ip)"
    if not shutil.which("openssl"):
        return "it needs openssl, for the stand-in's certificate"
    return None


def per_post(run: dict[str, Any], in_sequence: float, rtt: float) -> float:
    """Round trips one post costs, from a drain (first post to last) of `in_sequence` posts one
    after another: for the bridge, a channel's SMS (its catch-up notice, one more post, makes
    up for the first post, which the drain's time does not include); for the naive loop, all
    its SMS but the first."""
    return float(run["drain_seconds"]) / in_sequence / rtt


async def run(count: int, naive_count: int, rtt: float, runs: int) -> dict[str, Any]:
    channels = 10
    bridge_runs, naive_runs = [], []
    async with slow_link(rtt) as place:
        for _ in range(runs):
            ours = await bridge_run(count, channels, "sqlite", slack_place=place)
            theirs = await naive_run(naive_count, channels, slack_place=place)
            bridge_runs.append(
                ours | {"round_trips_per_post": per_post(ours, count / channels, rtt)}
            )
            naive_runs.append(
                theirs | {"round_trips_per_post": per_post(theirs, naive_count - 1, rtt)}
            )
    bridge, naive = spread(bridge_runs), spread(naive_runs)
    return {
        "sms": count,
        "naive_sms": naive_count,
        "channels": channels,
        "rtt_seconds": rtt,
        "runs": runs,
        "bridge": {
            key: bridge[key]
            for key in ("sms_per_second", "round_trips_per_post", "slack_connections")
        },
        "naive": naive,
        "ratio_to_naive": spread(
            [
                {"sms_per_second": ours["sms_per_second"] / theirs["sms_per_second"]}
                for ours, theirs in zip(bridge_runs, naive_runs, strict=True)
            ]
        )["sms_per_second"],
        "exactly_once": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=2000, help="the bridge's backlog")
    parser.add_argument("--naive-sms", type=int, default=100, help="the naive loop's backlog")
    parser.add_argument("--rtt", type=float, default=0.1, help="round trip to Slack, seconds")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if reason := unavailable():
        raise SystemExit(f"bench/network.py cannot run here: {reason}")
    result = asyncio.run(run(args.sms, args.naive_sms, args.rtt, args.runs))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
