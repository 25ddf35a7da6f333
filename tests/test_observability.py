"""What operators watch: /metrics, and logs with one line per poll cycle and per failure."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import OPS, USERNAME, FakeClock, MakeHarness, Served
from processes import bridge_env, finish, smsbridge, wait_ready
from smsbridge.privacy import account_label
from smsbridge.sim.provider import Account, Fault

ALICE = "61409560857"
LABEL = account_label(USERNAME, None)  # what metrics call the account without a name


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_and_json_logs_of_a_running_bridge(served: Served, tmp_path: Path) -> None:
    env = bridge_env(served, tmp_path, SMSBRIDGE_PROVIDER__NAME="field-ops")
    process = await smsbridge("run", "--log-format", "json", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    served.provider.add(ALICE, "measure me")
    served.provider.add(ALICE, "and me", recipient="61499999999")
    await asyncio.wait_for(served.slack.wait_for_sms(2), 30)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as client:
        for _ in range(200):  # until the confirms are counted
            exposition = (await client.get("/metrics")).text
            metrics = samples(exposition)
            if metrics.get(("smsbridge_messages_bridged_total", (("account", "field-ops"),))) == 2:
                break
            await asyncio.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    code, _, err = await finish(process)
    assert code == 0, err
    account = (("account", "field-ops"),)  # the name the operator chose, not the login
    assert USERNAME not in exposition
    assert ALICE not in exposition
    assert metrics[("smsbridge_messages_bridged_total", account)] == 2
    assert metrics[("smsbridge_polls_total", account)] >= 1
    assert metrics[("smsbridge_delivery_lag_seconds_count", account)] == 2
    assert ("smsbridge_backlog", account) in metrics
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    cycles = [line for line in lines if line["message"].startswith("poll:")]
    assert cycles, "no poll cycle was logged"
    assert {"pages", "fetched", "new", "unrouted", "cursor", "account"} <= cycles[0].keys()
    assert sum(line["new"] for line in cycles) == 2
    assert all(line["level"] in ("info", "warning", "error") for line in lines)
    assert ALICE not in err
    assert "measure me" not in err


async def test_errors_are_counted_by_cause(served: Served, make_harness: MakeHarness) -> None:
    clock = FakeClock()
    harness = await make_harness(clock=clock)
    metrics = harness.bridge.metrics
    for fault in (Fault.HTTP_503, Fault.MALFORMED_JSON):
        served.provider.inject(fault)
        await harness.cycle()
        clock.advance(3600)  # past any backoff
    served.provider.accounts[USERNAME] = Account("wrong now")
    await harness.cycle()
    clock.advance(3600)
    served.provider.accounts[USERNAME] = Account("demo password & more")
    served.slack.force("chat.postMessage", channel=OPS, status=429, retry_after=1)
    served.provider.add(ALICE, "throttled once")
    await harness.cycle()
    values = samples(metrics.exposition().decode())
    for cause in ("transient", "malformed", "rejected"):
        assert values[("smsbridge_poll_errors_total", (("account", LABEL), ("cause", cause)))] == 1
    assert values[("smsbridge_slack_rate_limited_total", (("channel", OPS),))] == 1
    assert values[("smsbridge_messages_bridged_total", (("account", LABEL),))] == 1
