"""One real `smsbridge run` through every provider fault and the Slack faults: nothing lost,
nothing doubled, the process alive throughout and stopping cleanly at the end."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import INBOX, OPS, OPS_LINE, OTHER_LINE, PASSWORD, Served
from processes import bridge_env, finish, ledger_counts, smsbridge, wait_ready
from smsbridge.provider.client import INTERNAL_ERROR, REJECTIONS
from smsbridge.sim.provider import Fault

ALICE, BOB = "61409560857", "61412345678"
DEAD_LINE = "61400000009"
YEAR = 365 * 86_400


async def test_fault_matrix_in_a_running_process(served: Served, tmp_path: Path) -> None:
    served.slack.add_channel("C0DEAD", "archived-team", archived=True)
    env = bridge_env(
        served,
        tmp_path,
        SMSBRIDGE_REJECTED_RETRY="1",
        SMSBRIDGE_PROVIDER__TIMEOUT="0.5",  # so that the slow answer below is a real timeout
        SMSBRIDGE_ROUTES=f'{{"{OPS_LINE}": "{OPS}", "{DEAD_LINE}": "C0DEAD", "*": "{INBOX}"}}',
    )
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    served.provider.slow_seconds = 1.0  # twice the timeout
    expected: list[str] = []

    async def arrives(text: str, recipient: str = OPS_LINE) -> None:
        expected.append(served.provider.add(ALICE, text, recipient=recipient).document_id)
        await asyncio.wait_for(served.slack.wait_for_sms(len(expected)), 120)
        assert process.returncode is None, "the bridge died"

    try:
        for fault in Fault:  # every provider fault, each followed by an SMS that must arrive
            served.provider.inject(fault)
            await arrives(f"after {fault.value}")

        # A 429 storm on one channel while another flows.
        storm_began = len(served.slack.calls)
        served.slack.force("chat.postMessage", channel=OPS, status=429, retry_after=1, times=4)
        expected.append(served.provider.add(ALICE, "through the storm").document_id)
        expected.append(
            served.provider.add(BOB, "meanwhile elsewhere", recipient=OTHER_LINE).document_id
        )
        await asyncio.wait_for(served.slack.wait_for_sms(len(expected)), 120)
        posted = {
            channel: at
            for at, method, channel, status in served.slack.calls[storm_began:]
            if method == "chat.postMessage" and status == 200
        }
        assert posted[INBOX] < posted[OPS], "the storm on one channel held up the other"

        # Slack 5xx, twice: retried, posted once.
        served.slack.force("chat.postMessage", status=502, times=2)
        await arrives("after two 502s")

        # An archived channel: that SMS fails and is kept; the others flow.
        failed = served.provider.add(ALICE, "to the archived team", recipient=DEAD_LINE).document_id
        await arrives("after the archived one")

        # A hostile gateway's data. One SMS stamped a year ahead: posted, and the cursor does
        # not follow it, so the next SMS still arrives.
        future = served.provider.add(ALICE, "from the future", timestamp=int(time.time()) + YEAR)
        expected.append(future.document_id)
        await arrives("after the future one")
        # One broken record the gateway keeps sending: kept as invalid once, the rest flow.
        served.provider.bad_records.append(
            {"from": ALICE, "documentId": "x" * 10_000, "timestamp": int(time.time()), "text": "?"}
        )
        await arrives("beside the broken record")
        # A text of a megabyte: posted, cut, with a note.
        await arrives("y" * 1_000_000)
        served.provider.bad_records.clear()

        # Slack's nonsense: ok without ts, an HTML page, a broken JSON body, Retry-After -5.
        served.slack.force("chat.postMessage", body='{"ok": true}')
        await arrives("after an ok without ts")
        served.slack.force("chat.postMessage", body="<html>busy</html>", content_type="text/html")
        await arrives("after an HTML answer")
        served.slack.force("chat.postMessage", status=503, body="{not json")
        await arrives("after broken JSON")
        served.slack.force("chat.postMessage", status=429, retry_after="-5", times=2)
        await arrives("after a negative Retry-After")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code, _, err = await finish(process)
        print(err[-20_000:])  # the bridge's log, shown by pytest if anything above failed
    assert code == 0, err
    assert "SMS provider timed out" in err  # the slow and the dripped answers timed out
    assert PASSWORD not in err  # the echoed form never reached the log
    assert "Traceback" not in err
    assert Counter(served.slack.document_ids()) == Counter(expected)
    counts = await ledger_counts(env)
    assert counts["failed"] == 1
    assert counts["invalid"] == 1  # the broken record, kept once although sent every poll
    assert failed not in served.slack.document_ids()
    assert counts["pending"] + counts["posting"] == 0
    long_post = next(m for m in served.slack.all_messages() if "y" * 100 in m["text"])
    assert long_post["blocks"][-1]["text"]["text"].endswith("more characters not shown]")


@pytest.mark.parametrize("status", sorted({*REJECTIONS, INTERNAL_ERROR}))
def test_every_documented_error_status_can_be_injected(status: int) -> None:
    assert Fault(f"status_{status}").value == f"status_{status}"  # ValueError if missing


async def test_a_token_revoked_while_running_stops_with_exit_2_and_loses_nothing(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path)
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    served.slack.token = "xoxb-reissued"  # the old token is revoked
    kept = served.provider.add(ALICE, "arrives while the token is bad").document_id
    code, out, err = await finish(process)
    assert code == 2
    assert "invalid_auth" in err
    assert "SMSBRIDGE_SLACK__BOT_TOKEN" in err
    assert "Traceback" not in err + out
    # The operator sets the new token and starts again: the SMS was kept and arrives.
    process = await smsbridge("run", env={**env, "SLACK_BOT_TOKEN": "xoxb-reissued"})
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    process.send_signal(signal.SIGTERM)
    assert (await finish(process))[0] == 0
    assert served.slack.document_ids() == [kept]
