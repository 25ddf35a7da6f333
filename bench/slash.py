"""Slash commands while the bridge is busy, sent as Slack sends them: a form, signed, over HTTP.

    .venv/bin/python bench/slash.py [--sms 20000] [--history 1000] [--runs 1]

1. Acknowledgement during a drain: while the bridge drains `--sms` over 10 channels (as in
   bench/throughput.py, on SQLite), `/sms status` every 50 ms from a routed channel, each from
   another user; timed from sending the command to the bridge's HTTP answer (Slack shows the
   user an error when it waits over 3 s).
2. `/sms history 1h limit 100` in a channel whose line received `--history` SMS over the last
   minute, all of them bridged already (each answer line links its post): timed from sending
   the command to the answer's arrival at its `response_url` (the Slack stand-in's
   `/_sim/respond`, on the same clock), five times. The history is read from the gateway
   stand-in live, page by page, as `/sms history` always reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from standins import Standins, summary
from throughput import bridge_run, spread

SIGNING_SECRET = "bench"  # what bench/standins.py gives the bridge
STATUS_EVERY = 0.05
HISTORY_ASKS = 5


def signed(text: str, user: str, channel: str, response_url: str) -> tuple[str, dict[str, str]]:
    """The form body and headers of a slash command, as Slack sends it."""
    body = urlencode(
        {
            "token": "unused",
            "team_id": "T0BENCH",
            "channel_id": channel,
            "user_id": user,
            "command": "/sms",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )
    stamp = str(int(time.time()))
    signature = str(
        SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    return body, headers


async def acknowledgements(rig: Standins, bridge_url: str, over: asyncio.Event) -> dict[str, Any]:
    """`/sms status` every 50 ms until the drain is over: how fast each is acknowledged."""
    took: list[float] = []
    async with httpx.AsyncClient(base_url=bridge_url, timeout=10) as client:
        index = 0
        while not over.is_set():
            body, headers = signed(
                "status", f"U0ACK{index:05d}", "C0BENCH0", f"{rig.slack_url}/_sim/respond"
            )
            began = time.perf_counter()
            answer = await client.post("/slack/events", content=body, headers=headers)
            took.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise SystemExit(f"/sms status was answered {answer.status_code}")
            index += 1
            await asyncio.sleep(STATUS_EVERY)
    return {"ack_p50_s": summary(took)["p50"], "ack_p99_s": summary(took)["p99"], "acks": len(took)}


async def histories(
    rig: Standins, bridge_url: str, over: asyncio.Event, *, expected: int
) -> dict[str, Any]:
    """Once everything is bridged: `/sms history` five times, each timed to its answer, which
    must count all `expected` SMS and show 100 of them."""
    await over.wait()
    took: list[float] = []
    async with httpx.AsyncClient(base_url=bridge_url, timeout=10) as client:
        seen = len((await rig.http.get(f"{rig.slack_url}/_sim/responses")).json())
        for index in range(HISTORY_ASKS):
            body, headers = signed(
                "history 1h limit 100",
                f"U0HIST{index:03d}",
                "C0BENCH0",
                f"{rig.slack_url}/_sim/respond",
            )
            asked = time.time()
            answer = await client.post("/slack/events", content=body, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"/sms history was answered {answer.status_code}")
            [(at, response)] = (
                await rig.http.get(
                    f"{rig.slack_url}/_sim/responses", params={"after": seen, "wait": 10}
                )
            ).json()
            seen += 1
            if f"Showing 100 of {expected}." not in json.dumps(response):
                raise SystemExit(f"/sms history did not answer as expected: {response}"[:500])
            took.append(at - asked)
    return {"history_p50_s": summary(took)["p50"], "history_max_s": max(took)}


async def run(count: int, history: int, runs: int) -> dict[str, Any]:
    during, after = [], []
    for _ in range(runs):
        during.append(await bridge_run(count, 10, "sqlite", alongside=acknowledgements))
        asking = functools.partial(histories, expected=history)
        after.append(await bridge_run(history, 1, "sqlite", alongside=asking))
    keep = ("sms_per_second", "ack_p50_s", "ack_p99_s", "acks")
    return {
        "sms": count,
        "history_sms": history,
        "runs": runs,
        "during_drain": {key: value for key, value in spread(during).items() if key in keep},
        "history": {
            key: value
            for key, value in spread(after).items()
            if key in ("history_p50_s", "history_max_s")
        },
        "exactly_once": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=20_000, help="the drain beside the commands")
    parser.add_argument("--history", type=int, default=1000, help="SMS in the history asked for")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sms, args.history, args.runs)), indent=2))


if __name__ == "__main__":
    main()
