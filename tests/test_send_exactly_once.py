"""A real `smsbridge run` killed with SIGKILL while an SMS written in Slack is being sent: after
the restart the SMS is found in the gateway's list of sent SMS, and never sent twice."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from conftest import INBOX, OPS, OPS_LINE, USERNAME, Served
from processes import bridge_env, finish, smsbridge, wait_ready
from smsbridge.sim.provider import Fault
from smsbridge.store.store import Store

CUSTOMER = "61409560857"


async def posted(database_url: str, document_id: str) -> None:
    """Until the bridge (another process) has confirmed the post of `document_id`."""
    store = Store.open(database_url)
    try:
        async with asyncio.timeout(30):
            # Another process writes it: no event crosses that boundary, so look again.
            while not await store.ledger.posts(USERNAME, [document_id]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await store.close()


async def test_a_kill_during_a_send_sends_the_sms_once(served: Served, tmp_path: Path) -> None:
    routes = {OPS_LINE: {"channel": OPS, "replies": True}, "*": INBOX}
    env = bridge_env(served, tmp_path, SMSBRIDGE_ROUTES=json.dumps(routes))
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    sms = served.provider.add(CUSTOMER, "When do you arrive?", recipient=OPS_LINE)
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    await posted(env["SMSBRIDGE_DATABASE_URL"], sms.document_id)
    thread = served.slack.top_level(OPS)[0]["ts"]
    reply = served.slack.say(OPS, "U0JANE", "Around 10", thread_ts=thread)
    served.provider.slow_seconds = 2.0
    served.provider.inject(Fault.SLOW)  # the gateway takes the SMS, then answers slowly
    event = {"channel": OPS, "user": "U0JANE", "text": "Around 10", "ts": reply}
    answer = await served.slack.deliver(
        f"http://127.0.0.1:{env['PORT']}", "test-signing-secret", {**event, "thread_ts": thread}
    )
    assert answer == 200  # recorded before it was acknowledged
    await asyncio.wait_for(served.provider.send_requested.wait(), 30)
    process.kill()  # mid-send: the gateway has the SMS, the bridge never hears back
    await process.wait()
    await asyncio.wait_for(served.provider.wait_for_sent(1), 30)

    process = await smsbridge("run", env=env)
    try:
        # ⏳ came before the kill; ✅ comes once the restarted bridge settled the send
        await asyncio.wait_for(served.slack.wait_for_calls("reactions.add", 2), 60)
    finally:
        process.send_signal(signal.SIGTERM)
        code, _, err = await finish(process)
    assert code == 0, err
    assert [sent.text for sent in served.provider.sent] == ["Around 10"]  # once, not twice
    message = next(m for m in served.slack.channels[OPS].messages if m["ts"] == reply)
    assert message["reactions"] == ["white_check_mark"]
