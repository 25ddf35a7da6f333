"""Several `smsbridge run` replicas on one PostgreSQL: one polls, all serve, none doubles."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from conftest import OPS_LINE, OTHER_LINE, USERNAME, Served
from processes import bridge_env, finish, free_port, smsbridge, wait_ready
from smsbridge.store.schema import ledger
from smsbridge.store.store import Store

pytestmark = pytest.mark.postgres
ALICE, BOB, CAROL = "61409560857", "61412345678", "447700900123"


def replica_env(served: Served, tmp_path: Path, database: str) -> dict[str, str]:
    return bridge_env(
        served,
        tmp_path,
        SMSBRIDGE_DATABASE_URL=database,
        SMSBRIDGE_POLL_INTERVAL="1",
        SMSBRIDGE_SLACK__TIMEOUT="2",  # bounds how long another replica's post may be in flight
        PORT=str(free_port()),
    )


async def test_a_killed_holder_is_replaced_within_two_poll_intervals(
    served: Served, tmp_path: Path, postgres_database: str
) -> None:
    store = Store.open(postgres_database)
    first = await smsbridge("run", env=replica_env(served, tmp_path, postgres_database))
    second_env = replica_env(served, tmp_path, postgres_database)
    try:
        await asyncio.wait_for(
            wait_ready(second_env["PORT"], second := await smsbridge("run", env=second_env)), 60
        )
        holder = await store.leases.holder(USERNAME)
        assert holder is not None
        victim, survivor = (first, second) if str(first.pid) in holder else (second, first)
        victim.kill()
        killed_at = time.monotonic()
        await victim.wait()
        # Another process changes the lease row; the database is the only place to watch it.
        while (now_holder := await store.leases.holder(USERNAME)) in (None, holder):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        took = time.monotonic() - killed_at
        assert str(survivor.pid) in now_holder
        assert took <= 2 * 1.0 + 0.5, f"takeover took {took:.2f}s"  # two intervals, plus slack
        served.provider.add(ALICE, "after the takeover")
        await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
        survivor.send_signal(signal.SIGTERM)
        code, _, err = await finish(survivor)
        assert code == 0, err
    finally:
        for process in (first, second):
            if process.returncode is None:
                process.kill()
                await process.wait()
        await store.close()


async def test_two_replicas_killed_at_random_deliver_every_sms_exactly_once(
    served: Served, tmp_path: Path, postgres_database: str
) -> None:
    served.slack.post_delay = 0.1  # posts land, then their answers take a moment
    rng = random.Random(20261130)
    people = [(ALICE, OPS_LINE), (BOB, OPS_LINE), (CAROL, OTHER_LINE)]
    origins = [served.provider.new_id() for _ in people]
    total = 60
    expected: list[str] = []

    async def customers() -> None:
        for i in range(total):
            sender, line = people[i % 3]
            sms = served.provider.add(
                sender, f"sms {i}", recipient=line, origin=origins[i % 3] if i % 2 else None
            )
            expected.append(sms.document_id)
            await asyncio.sleep(0.05)

    replicas = [
        await smsbridge("run", env=replica_env(served, tmp_path, postgres_database))
        for _ in range(2)
    ]
    feeding = asyncio.create_task(customers())
    try:
        for _ in range(6):  # bounded: six kills at random moments, of either replica
            target = min(total, len(served.slack.document_ids()) + rng.randint(1, 6))
            await asyncio.wait_for(served.slack.wait_for_sms(target), 90)
            victim = rng.randrange(2)
            for process in replicas:
                if process.returncode is not None:
                    _, died = await process.communicate()
                    raise AssertionError(
                        f"a replica died by itself ({process.returncode}): {died.decode()[-3000:]}"
                    )
            replicas[victim].kill()
            await replicas[victim].wait()
            replicas[victim] = await smsbridge(
                "run", env=replica_env(served, tmp_path, postgres_database)
            )
            if target == total:
                break
        await feeding
        await asyncio.wait_for(served.slack.wait_for_sms(total), 120)
        for process in replicas:
            process.send_signal(signal.SIGTERM)
        for process in replicas:
            code, _, err = await finish(process)
            assert code == 0, err
    finally:
        for process in replicas:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert Counter(served.slack.document_ids()) == Counter(expected)  # zero loss, zero duplicates
    store = Store.open(postgres_database)
    try:
        async with store.engine.connect() as conn:
            claimers = (await conn.execute(select(ledger.c.claimed_by).distinct())).scalars().all()
    finally:
        await store.close()
    assert len(set(claimers)) >= 2, "only one replica ever posted: no takeover was exercised"


async def both_listening(store: Store) -> None:
    """Until two sessions on the database listen for wake-ups (seen in pg_stat_activity)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    )
    while True:
        async with store.engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= 2:
                return
        await asyncio.sleep(0.05)


async def test_a_push_to_the_replica_without_the_lease_is_posted_by_the_holder_at_once(
    served: Served, tmp_path: Path, postgres_database: str
) -> None:
    token = "w" * 40
    store = Store.open(postgres_database)
    envs = [
        {
            **replica_env(served, tmp_path, postgres_database),
            "SMSBRIDGE_PUSH__TOKEN": token,
            "SMSBRIDGE_POLL_INTERVAL": "30",  # far slower than the wake-up to be measured
        }
        for _ in range(2)
    ]
    processes = [await smsbridge("run", env=env) for env in envs]
    try:
        for env, process in zip(envs, processes, strict=True):
            await asyncio.wait_for(wait_ready(env["PORT"], process), 60)
        holder = await store.leases.holder(USERNAME)
        assert holder is not None
        other = next(
            env
            for env, process in zip(envs, processes, strict=True)
            if str(process.pid) not in holder
        )
        await asyncio.wait_for(both_listening(store), 10)
        query = {"MOMessageId": "pushed-1", "from": ALICE, "to": OPS_LINE, "text": "wake up"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{other['PORT']}") as http:
            pushed_at = time.monotonic()
            answer = await http.get(f"/provider/push/{token}", params=query)
        assert answer.status_code == 200
        await asyncio.wait_for(served.slack.wait_for_sms(1), 5)
        took = time.monotonic() - pushed_at
        assert took <= 0.5, f"the lease holder posted it {took:.2f}s after the push"
        assert served.slack.document_ids() == ["pushed-1"]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            code, _, err = await finish(process)
            assert code == 0, err
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await store.close()
