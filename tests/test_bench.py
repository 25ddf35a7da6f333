"""The benchmarks keep running: tiny runs of `bench/*.py`, as a user runs them. They assert
only that each ran and lost or doubled nothing, never a speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "backlog.py"
PUSH_BENCH = BENCH.with_name("push.py")


def test_the_backlog_benchmark_runs_and_checks_exactly_once() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sms", "60", "--channels", "3", "--interval", "0.05",
         "--pace", "0.05"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert report["sms"] == "60"
    assert report["rate_limited"] == "0"  # paced to the stand-in's limit: no 429 at all
    assert float(report["sms_per_second"]) > 0


def test_the_push_benchmark_runs_its_four_phases_and_checks_exactly_once() -> None:
    import json

    done = subprocess.run(
        [sys.executable, str(PUSH_BENCH), "--sms", "5", "--polled", "3", "--bursts", "1",
         "--storm", "20"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["exactly_once"] is True
    assert report["counts"] == {"sms": 5, "polled": 3, "bursts": 1, "storm": 20}
    for figure in ("push_to_post_s", "poll_to_post_s", "burst_of_5_last_post_s"):
        assert report[figure]["p50"] > 0
