"""The benchmarks keep running: `make bench-quick` (bench/all.py --quick) runs each one at a
tiny size, as a user runs it. It asserts only that each ran and lost or doubled nothing (each
benchmark checks every SMS it added against every post), never a speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ALL = Path(__file__).resolve().parent.parent / "bench" / "all.py"


def test_every_benchmark_runs_and_posts_every_sms_exactly_once() -> None:
    done = subprocess.run(
        [sys.executable, str(ALL), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    ran = [line.split(":", 1)[0] for line in done.stdout.splitlines()]
    assert ran == ["throughput_sqlite", "slack_limits", "push"]
    assert all("every SMS posted exactly once" in line for line in done.stdout.splitlines())
