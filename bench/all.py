"""Run every benchmark and write their figures into BENCHMARKS.md, or run each at a tiny size.

    .venv/bin/python bench/all.py            # `make bench`: the full runs, three of each
    .venv/bin/python bench/all.py --quick    # `make bench-quick`: seconds; part of `make test`

Each benchmark runs as its own command, exactly as BENCHMARKS.md shows it, and prints JSON.
The full run rewrites the part of BENCHMARKS.md between the two `bench/all.py` markers: the
machine (cores, memory, Python and library versions), then each figure with the command that
produced it, as the median and the spread (min-max) over the runs. The quick run writes
nothing: it fails when a benchmark fails to run or loses or doubles an SMS (each benchmark
checks every SMS itself), and never on a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from network import unavailable as network_unavailable
from throughput import floor_seconds

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- bench/all.py: begin -->", "<!-- bench/all.py: end -->"
RESULTS = HERE / "results.json"  # the last full run's raw figures, behind BENCHMARKS.md
RUNS = 3

# (name, arguments): each as a user runs it from the project's root
FULL = [
    ("throughput_sqlite", ["bench/throughput.py", "--sms", "20000", "--runs", str(RUNS)]),
    (
        "throughput_postgres",
        ["bench/throughput.py", "--sms", "20000", "--runs", str(RUNS), "--database", "postgres"],
    ),
    ("slack_limits", ["bench/throughput.py", "--sms", "200", "--slack-limit", "--runs", str(RUNS)]),
    ("memory", ["bench/throughput.py", "--sms", "100000", "--no-naive"]),
    ("push", ["bench/push.py"]),
    ("network", ["bench/network.py", "--runs", str(RUNS)]),
    ("slash", ["bench/slash.py", "--runs", str(RUNS)]),
]
QUICK = [
    ("throughput_sqlite", ["bench/throughput.py", "--sms", "300", "--channels", "3"]),
    ("slack_limits", ["bench/throughput.py", "--sms", "24", "--channels", "3", "--slack-limit"]),
    ("push", ["bench/push.py", "--sms", "5", "--polled", "3", "--bursts", "1", "--storm", "20"]),
    ("network", ["bench/network.py", "--sms", "60", "--naive-sms", "5", "--rtt", "0.02"]),
    ("slash", ["bench/slash.py", "--sms", "300", "--history", "150"]),
]
# bench/push.py measures one run per command: it runs this many times, summarised here.
REPEATED = {"push": RUNS}


def run_one(arguments: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *arguments],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result.get("exactly_once") is not True:
        raise SystemExit(f"{' '.join(arguments)}: not every SMS was posted exactly once")
    return result


def machine() -> list[str]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("slack-sdk", "aiohttp", "sqlalchemy", "aiosqlite", "asyncpg", "uvloop")
    )
    return [
        f"- Machine: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; {versions}",
        f"- Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench` "
        f"(`.venv/bin/python bench/all.py`); each figure: median (min-max) over {RUNS} runs",
    ]


def spread(values: list[float], unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    shown = [value * scale for value in values]
    median = statistics.median(shown)
    return f"{median:.{digits}f}{unit} ({min(shown):.{digits}f}-{max(shown):.{digits}f})"


def from_runs(result: dict[str, Any], key: str, **format: Any) -> str:
    """A figure bench/throughput.py already summarised over its runs."""
    figure = result[key]
    digits = format.get("digits", 2)
    scale = format.get("scale", 1.0)
    unit = format.get("unit", "")
    return (
        f"{figure['median'] * scale:.{digits}f}{unit} "
        f"({figure['min'] * scale:.{digits}f}-{figure['max'] * scale:.{digits}f})"
    )


def report(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [*machine(), "", "| figure | goal | measured | command |", "|---|---|---|---|"]
    for kind in ("sqlite", "postgres"):
        [result] = results[f"throughput_{kind}"]
        shown = f"`.venv/bin/python {' '.join(dict(FULL)[f'throughput_{kind}'])}`"
        bridge, naive = result["bridge"], result["naive"]
        goal = "1,500" if kind == "sqlite" else "1,000"
        lines += [
            f"| {kind}: 20,000 SMS over 10 channels, SMS/s | >= {goal} | "
            f"{from_runs(bridge, 'sms_per_second', digits=0)} | {shown} |",
            f"| {kind}: the naive loop on the same stand-ins, SMS/s | | "
            f"{from_runs(naive, 'sms_per_second', digits=0)} | (same run) |",
            f"| {kind}: smsbridge / naive | >= 3x | "
            f"{from_runs(result, 'ratio_to_naive', unit='x')} | (same run) |",
            f"| {kind}: CPU time per SMS, bridge process | <= 0.6 ms | "
            f"{from_runs(bridge, 'cpu_ms_per_sms', unit=' ms')} | (same run) |",
            f"| {kind}: CPU time per SMS, the naive loop's process | | "
            f"{from_runs(naive, 'cpu_ms_per_sms', unit=' ms')} | (same run) |",
            f"| {kind}: peak RSS, bridge process | <= 120 MB | "
            f"{from_runs(bridge, 'peak_rss_mib', unit=' MiB', digits=0)} | (same run) |",
            f"| {kind}: start-up to /readyz 200 (new database, empty gateway) | <= 1.5 s | "
            f"{from_runs(bridge, 'start_up_seconds', unit=' s')} | (same run) |",
        ]
    [memory] = results["memory"]
    lines.append(
        f"| sqlite: {memory['sms']:,} SMS: RSS growth after the first tenth; peak RSS | <= 10 MB "
        f"| {from_runs(memory['bridge'], 'rss_growth_mib', unit=' MiB', digits=1)}; "
        f"{from_runs(memory['bridge'], 'peak_rss_mib', unit=' MiB', digits=0)} | "
        f"`.venv/bin/python {' '.join(dict(FULL)['memory'])}` |"
    )
    push = results["push"]
    push_command = "`.venv/bin/python bench/push.py`"
    for key, quantile, name, goal in (
        ("push_to_post_s", "p50", "push -> posted, p50", "<= 0.15 s"),
        ("push_to_post_s", "p95", "push -> posted, p95", "<= 0.4 s"),
        ("poll_to_post_s", "p50", "polling every 1 s -> posted, p50", "<= 0.6 s"),
        ("poll_to_post_s", "p95", "polling every 1 s -> posted, p95", "<= 1.2 s"),
        ("burst_of_5_last_post_s", "max", "burst of 5 to one channel, last post, max", "<= 1.5 s"),
        ("storm_push_answer_s", "p99", "storm of 500 pushes in 5 s, answer p99", "<= 50 ms"),
    ):
        values = [run[key][quantile] for run in push]
        scale, unit = (1000, " ms") if "ms" in goal else (1, " s")
        lines.append(
            f"| {name} | {goal} | {spread(values, unit, scale, 3 if scale == 1 else 0)} | "
            f"{push_command} |"
        )
    [limits] = results["slack_limits"]
    floor = floor_seconds(limits["sms"], limits["channels"])
    drains = limits["bridge"]["drain_seconds"]
    over = {key: drains[key] / floor - 1 for key in ("median", "min", "max")}
    lines.append(
        f"| 200 SMS over 10 channels at Slack's limit (1/s per channel, bursts of 4): drain "
        f"time over the floor of {floor:.0f} s (20 SMS and a catch-up notice per channel) | "
        f"<= 5% | {from_runs({'over': over}, 'over', scale=100, unit='%', digits=1)}; 429s: "
        f"{limits['bridge']['rate_limited']['max']:.0f}, posts before a Retry-After: "
        f"{limits['bridge']['early_posts']['max']:.0f} | "
        f"`.venv/bin/python {' '.join(dict(FULL)['slack_limits'])}` |"
    )
    [slash] = results["slash"]
    shown = f"`.venv/bin/python {' '.join(dict(FULL)['slash'])}`"
    lines += [
        f"| `/sms status` every 50 ms during a drain of {slash['sms']:,} SMS: acknowledged, "
        f"p99 | <= 50 ms | {from_runs(slash['during_drain'], 'ack_p99_s', scale=1000, unit=' ms')}"
        f" | {shown} |",
        f"| `/sms history 1h limit 100` over {slash['history_sms']:,} SMS: command to answer, "
        f"slowest of 5 | <= 1 s | {from_runs(slash['history'], 'history_max_s', unit=' s')} | "
        "(same run) |",
    ]
    if "network" in results:
        [network] = results["network"]
        shown = f"`.venv/bin/python {' '.join(dict(FULL)['network'])}`"
        rtt = f"{network['rtt_seconds'] * 1000:.0f} ms"
        bridge, naive = network["bridge"], network["naive"]
        lines += [
            f"| Slack over HTTPS {rtt} away: {network['sms']:,} SMS over 10 channels, SMS/s | "
            f"not divided by the round trip | {from_runs(bridge, 'sms_per_second', digits=1)} | "
            f"{shown} |",
            f"| the same: round trips per post (per channel) | about 1 | "
            f"{from_runs(bridge, 'round_trips_per_post')} | (same run) |",
            f"| the same: connections to Slack over the drain | reused | "
            f"{from_runs(bridge, 'slack_connections', digits=0)} | (same run) |",
            f"| the naive loop over the same link ({network['naive_sms']} SMS): SMS/s; round "
            f"trips per post; connections | | {from_runs(naive, 'sms_per_second', digits=1)}; "
            f"{from_runs(naive, 'round_trips_per_post')}; "
            f"{from_runs(naive, 'slack_connections', digits=0)} | (same run) |",
            f"| the same: smsbridge / naive | | {from_runs(network, 'ratio_to_naive', unit='x')} "
            f"| (same run) |",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; check, write nothing")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help=f"rewrite BENCHMARKS.md from the last full run's {RESULTS.name}, running nothing",
    )
    parser.add_argument(
        "--only",
        help="comma-separated benchmark names: run just these, keeping the other figures of "
        f"the last full run's {RESULTS.name} (to finish a run that stopped)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results: dict[str, list[dict[str, Any]]] = {}
    if args.report_only or args.only:
        results = json.loads(RESULTS.read_text())
    if args.report_only:
        plan = []
    elif args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {name for name, _ in plan}
        if unknown:
            parser.error(f"no benchmark is named {', '.join(sorted(unknown))}")
        plan = [(name, arguments) for name, arguments in plan if name in wanted]
    for name, arguments in plan:
        if name == "network" and (reason := network_unavailable()):
            print(f"{name}: not run: {reason}", flush=True)
            continue
        times = 1 if args.quick else REPEATED.get(name, 1)
        results[name] = [
            run_one(arguments, timeout=300 if args.quick else 3600) for _ in range(times)
        ]
        print(f"{name}: ran {times}x, every SMS posted exactly once", flush=True)
        if not args.quick:  # kept as it goes: a failure later loses no figures
            RESULTS.write_text(json.dumps(results, indent=1))
    if args.quick:
        # the shape, for the report
        results["throughput_postgres"] = results["memory"] = results["throughput_sqlite"]
        report(results)  # the report can be built from what ran (it is not written)
        return
    text = BENCHMARKS.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    lines = [head.rstrip("\n"), "", BEGIN, *report(results), END, "", tail.lstrip("\n")]
    BENCHMARKS.write_text("\n".join(lines))
    print(f"wrote {BENCHMARKS.name}")


if __name__ == "__main__":
    main()
