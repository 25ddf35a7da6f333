"""`smsbridge` as the operator runs it: a real process, real signals, real HTTP."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import httpx

from conftest import OPS, OPS_LINE, OTHER_LINE, USERNAME, Served
from processes import bridge_env, finish, free_port, ledger_counts, smsbridge, wait_ready
from smsbridge.sim.provider import Account
from smsbridge.store.schema import LATEST
from smsbridge.store.store import Store

ALICE, BOB, CAROL = "61409560857", "61412345678", "447700900123"


async def test_missing_settings_exit_2_with_one_readable_list(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSBRIDGE_", "SLACK_"))}
    env["SMSBRIDGE_POLL_INTERVAL"] = "0.1"
    env["SMSBRIDGE_PROVIDER__PASSWORD"] = "do-not-print-me"
    code, out, err = await finish(await smsbridge("run", env=env))
    assert code == 2
    assert "Traceback" not in err + out
    for name in (
        "SMSBRIDGE_PROVIDER__USERNAME",
        "SMSBRIDGE_SLACK__BOT_TOKEN",
        "SMSBRIDGE_SLACK__SIGNING_SECRET",
        "SMSBRIDGE_ROUTES",
        "SMSBRIDGE_POLL_INTERVAL",
    ):
        assert name in err
    assert "do-not-print-me" not in err + out


async def test_health_readiness_and_sigterm_finishes_the_post_in_flight(
    served: Served, tmp_path: Path
) -> None:
    served.slack.post_delay = 1.0  # Slack stores the post, then takes a second to answer
    env = bridge_env(served, tmp_path)
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as client:
        assert (await client.get("/healthz")).json() == {"status": "alive"}
    sms = served.provider.add(ALICE, "in flight at shutdown")
    await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
    process.send_signal(signal.SIGTERM)  # while Slack has not answered yet
    code, _, err = await finish(process)
    assert code == 0, err
    assert "will be unused" not in err  # Bolt and the poster share one client, quietly
    assert "Unclosed" not in err  # the pooled Slack session is closed at the end
    store = Store.open(env["SMSBRIDGE_DATABASE_URL"])
    try:
        assert (await store.ledger.counts(USERNAME))["posted"] == 1
        assert list(await store.ledger.posts(USERNAME, [sms.document_id])) == [sms.document_id]
    finally:
        await store.close()


async def test_sigterm_mid_backlog_leaves_no_sms_in_doubt_and_a_restart_posts_the_rest_once(
    served: Served, tmp_path: Path
) -> None:
    # Posts are pipelined (one SMS's confirm is written while the next ones are posted, each
    # confirm claiming the SMS CLAIM_AHEAD after its own): a stop must confirm what was posted
    # and release what was claimed but not posted, so no SMS is left for a check in Slack.
    served.slack.post_delay = 0.05
    env = bridge_env(served, tmp_path)
    expected = [served.provider.add(ALICE, f"backlog {n}").document_id for n in range(30)]
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(served.slack.wait_for_sms(5), 30)
    process.send_signal(signal.SIGTERM)
    code, _, err = await finish(process)
    assert code == 0, err
    counts = await ledger_counts(env)
    assert counts["posting"] == 0
    assert counts["posted"] == len(served.slack.document_ids())  # every post confirmed
    assert 5 <= counts["posted"] < len(expected)  # stopped mid-backlog, as meant

    process = await smsbridge("run", env=env)
    await asyncio.wait_for(served.slack.wait_for_sms(len(expected)), 60)
    process.send_signal(signal.SIGTERM)
    code, _, err = await finish(process)
    assert code == 0, err
    assert served.slack.document_ids() == expected  # each once, in order
    assert not [m for _, m, _, _ in served.slack.calls if m == "conversations.history"]


async def test_sigkill_mid_stream_then_restart_delivers_every_sms_exactly_once(
    served: Served, tmp_path: Path
) -> None:
    served.slack.post_delay = 0.2  # a post lands, then its answer is still on the way
    env = bridge_env(served, tmp_path)
    origins = [served.provider.new_id() for _ in range(3)]
    people = [(ALICE, OPS_LINE), (BOB, OPS_LINE), (CAROL, OTHER_LINE)]
    expected: list[str] = []

    async def customers() -> None:
        for i in range(45):
            sender, line = people[i % 3]
            origin = origins[i % 3] if i % 2 else None
            expected.append(
                served.provider.add(sender, f"sms {i}", recipient=line, origin=origin).document_id
            )
            await asyncio.sleep(0.05)

    feeding = asyncio.create_task(customers())
    for landed in (4, 11, 19, 27):
        process = await smsbridge("run", env=env)
        # SIGKILL right after Slack stored a post, before the bridge heard back from it.
        await asyncio.wait_for(served.slack.wait_for_sms(landed), 60)
        process.kill()
        await process.wait()
    await feeding
    process = await smsbridge("run", env=env)
    await asyncio.wait_for(served.slack.wait_for_sms(len(expected)), 90)
    process.send_signal(signal.SIGTERM)
    code, _, err = await finish(process)
    assert code == 0, err

    assert Counter(served.slack.document_ids()) == Counter(expected)  # each exactly once
    lookups = [
        m
        for _, m, _, _ in served.slack.calls
        if m in ("conversations.history", "conversations.replies")
    ]
    assert lookups, "no post was ever in doubt: the test did not kill mid-post"
    # threads held across the kills: one thread per (channel, sender, origin)
    for channel in served.slack.channels.values():
        parents = [
            p
            for p in served.slack.top_level(channel.id)
            if p["metadata"]["event_type"] == "sms_received"
        ]
        keys = [
            (
                p["blocks"][0]["elements"][0]["text"].split("·")[0],
                p["metadata"]["event_payload"]["origin_document_id"],
            )
            for p in parents
        ]
        assert len(keys) == len(set(keys)), f"a conversation was split in #{channel.name}"


async def test_check_reports_every_part_and_exits_0_when_all_is_well(
    served: Served, tmp_path: Path
) -> None:
    code, out, err = await finish(await smsbridge("check", env=bridge_env(served, tmp_path)))
    assert code == 0, out + err
    for part in (
        "configuration",
        "database",
        "SMS provider",
        "Slack token",
        f"route {OPS_LINE}",
        "route *",
    ):
        assert part in out


async def test_check_names_what_is_wrong_and_exits_1(served: Served, tmp_path: Path) -> None:
    served.provider.accounts[USERNAME] = Account("a different password")
    served.slack.channels[OPS].archived = True
    code, out, _ = await finish(await smsbridge("check", env=bridge_env(served, tmp_path)))
    assert code == 1
    assert "authentication failed" in out
    assert "archived" in out


async def test_db_upgrade_creates_then_reports_up_to_date(served: Served, tmp_path: Path) -> None:
    env = bridge_env(served, tmp_path)
    code, out, _ = await finish(await smsbridge("db", "upgrade", env=env))
    assert (code, out.strip()) == (0, f"database schema: version 0 -> {LATEST}")
    code, out, _ = await finish(await smsbridge("db", "upgrade", env=env))
    assert (code, out.strip()) == (0, f"database schema is up to date (version {LATEST})")


async def test_demo_shows_threads_a_reply_from_slack_push_and_poll_and_defuses_the_channel_ping(
    tmp_path: Path,
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSBRIDGE_", "SLACK_"))}
    env["COLUMNS"] = "160"
    code, out, err = await finish(await smsbridge("demo", "--seconds", "12", env=env))
    assert code == 0, err
    assert "#field-ops" in out
    assert "U0SAM (Slack): Thanks! Sam will ring the bell" in out  # answered from Slack ...
    assert "Perfect, see you then!" in out  # ... and the customer's answer in the same thread
    assert "#sms-inbox" in out
    assert "↳ Actually, could we make it 10:00?" in out
    assert "Jane Doe (+61 409 560 857)" in out  # the contact book names her
    assert "<!channel> URGENT" in out  # shown as text, as Slack shows the escaped SMS
    assert "🔔 @here" in out  # the alert rule's mention, ours, is live
    assert "bridge log: how each SMS arrived" in out
    assert "pushed by the gateway" in out  # most SMS come by push ...
    assert "found by polling; no push of it came" in out  # ... a lost push, by polling


async def test_a_rejected_slack_token_stops_run_with_exit_2_and_the_fix(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path, SLACK_BOT_TOKEN="xoxb-revoked")
    code, out, err = await finish(await smsbridge("run", env=env))
    assert code == 2
    assert "invalid_auth" in err
    assert "SMSBRIDGE_SLACK__BOT_TOKEN" in err
    assert "Traceback" not in err + out
    assert "xoxb-revoked" not in err + out


async def test_history_in_the_terminal_filters_and_shows_sms_as_typed(
    served: Served, tmp_path: Path
) -> None:
    import time

    served.provider.add(
        ALICE, "[bold red]not markup[/] from alice", timestamp=int(time.time()) - 60
    )
    served.provider.add(BOB, "from bob", timestamp=int(time.time()) - 60)
    served.provider.add(ALICE, "too old", timestamp=int(time.time()) - 7200)
    env = bridge_env(served, tmp_path)
    code, out, err = await finish(
        await smsbridge("history", "1h", "from", "0409", "560", "857", env=env)
    )
    assert code == 0, err
    assert "[bold red]not markup[/] from alice" in out
    assert "from bob" not in out
    assert "too old" not in out
    assert "+61 409 560 857" in out


async def test_history_in_the_terminal_explains_a_bad_time(served: Served, tmp_path: Path) -> None:
    code, out, _ = await finish(
        await smsbridge("history", "soonish", env=bridge_env(served, tmp_path))
    )
    assert code == 2
    assert "can't read `soonish`" in out


async def test_an_unreachable_database_stops_run_with_exit_2_and_the_fix(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(
        served, tmp_path, SMSBRIDGE_DATABASE_URL="postgresql://smsbridge:s3cret@127.0.0.1:1/none"
    )
    code, out, err = await finish(await smsbridge("run", env=env))
    assert code == 2
    assert "cannot use the database" in err
    assert "SMSBRIDGE_DATABASE_URL" in err
    assert "Traceback" not in err + out
    assert "s3cret" not in err + out


async def test_a_second_run_on_one_sqlite_file_is_refused_with_the_fix(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path)
    first = await smsbridge("run", env=env)
    try:
        await asyncio.wait_for(wait_ready(env["PORT"], first), 30)
        code, out, err = await finish(await smsbridge("run", env={**env, "PORT": str(free_port())}))
        assert code == 2
        assert "SQLite cannot coordinate several processes" in err
        assert "Traceback" not in err + out
    finally:
        first.send_signal(signal.SIGTERM)
        assert (await finish(first))[0] == 0
