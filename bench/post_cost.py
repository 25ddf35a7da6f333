"""CPU time per Slack post: slack_sdk's client against the poster's direct Web API call.

    .venv/bin/python bench/post_cost.py [--posts 4000] [--rounds 2]

Both post the same rendered SMS over the same pooled aiohttp session, ten channels at a time,
to the Slack stand-in in its own process; the figure is this process's CPU time (user + system)
per post, so it holds what each way costs around the HTTP exchange. The rounds alternate the
two. Why it exists: the poster stopped using the SDK client for posts (slack/webapi.py), and
this is the measurement behind that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import uvloop
from standins import standins
from throughput import channels

from smsbridge.models import InboundSms
from smsbridge.slack.poster import SlackPoster, close_client, make_client
from smsbridge.slack.render import SlackMessage, render


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(posts: int, rounds: int) -> dict[str, list[float]]:
    names, _ = channels(10)
    async with standins(names, post_interval=0, post_burst=1, capacity=posts * rounds * 2) as rig:
        client = make_client("xoxb-sim-token", f"{rig.slack_url}/api/", 30)
        poster = SlackPoster(client)
        messages = [
            render(
                InboundSms(
                    sender="61409560857",
                    recipient="61411000001",
                    document_id=str(index),
                    origin_document_id=None,
                    timestamp=1_796_000_000 + index,
                    text=f"backlog sms {index}: running late, be there in 10",
                )
            )
            for index in range(posts)
        ]

        async def through_sdk(channel: str, part: Sequence[SlackMessage]) -> None:
            for message in part:
                await client.chat_postMessage(
                    channel=channel,
                    text=message.text,
                    blocks=message.blocks,
                    metadata=message.metadata,
                    unfurl_links=False,
                    unfurl_media=False,
                )

        async def direct(channel: str, part: Sequence[SlackMessage]) -> None:
            for message in part:
                await poster.post(channel, message, None)

        ways: dict[str, Callable[[str, Sequence[SlackMessage]], Awaitable[None]]] = {
            "slack_sdk AsyncWebClient.chat_postMessage": through_sdk,
            "SlackPoster.post (slack/webapi.py)": direct,
        }
        figures: dict[str, list[float]] = {name: [] for name in ways}
        try:
            for _ in range(rounds):
                for name, way in ways.items():
                    began = cpu_seconds()
                    await asyncio.gather(
                        *(way(names[k], messages[k :: len(names)]) for k in range(len(names)))
                    )
                    figures[name].append(1000 * (cpu_seconds() - began) / posts)
        finally:
            await close_client(client)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    figures = uvloop.run(measure(args.posts, args.rounds))
    cpu_ms_per_post = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v)}
        for name, v in figures.items()
    }
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"cpu_ms_per_post": cpu_ms_per_post, "seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
