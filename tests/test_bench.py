"""The benchmarks keep running: `make bench-quick` (bench/all.py --quick) runs each one at a
tiny size, as a user runs it. It asserts only that each ran and lost or doubled nothing (each
benchmark checks every SMS it added against every post), never a speed."""

from __future__ import annotations

import os
import shutil
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
    # the network benchmark needs a network namespace and TUN devices: root, as on CI
    network = os.geteuid() == 0 and Path("/dev/net/tun").exists() and shutil.which("ip")
    assert ran == ["throughput_sqlite", "slack_limits", "push", "network", "slash"]
    for line in done.stdout.splitlines():
        if line.startswith("network: not run") and not network:
            continue
        assert "every SMS posted exactly once" in line, line
