"""The benchmarks keep running: a tiny backlog through `bench/backlog.py`, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "backlog.py"


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
