"""Inbound SMS the gateway pushes (Push MO), over real HTTP to a running service: stored before
the gateway hears 200, posted at once, once even when polling brings the same SMS."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import (
    OPS,
    OPS_LINE,
    USERNAME,
    FakeClock,
    MakeHarness,
    MakeSettings,
    Served,
    running_service,
)
from processes import TcpProxy, free_port
from smsbridge.privacy import account_label

TOKEN = "p" * 40
CUSTOMER = "61409560857"


@pytest.fixture
async def running(served: Served, make_settings: MakeSettings) -> AsyncIterator[Any]:
    port = free_port()
    # A long poll interval: what arrives fast arrives by push.
    settings = make_settings(port=port, push={"token": TOKEN}, poll_interval=30)
    async with running_service(settings) as (service, http):
        yield http, service


async def test_a_get_push_is_posted_at_once_and_a_poll_of_it_posts_nothing_more(
    served: Served, running: Any
) -> None:
    http, service = running
    sms = served.provider.add(CUSTOMER, "pushed & polled", recipient=OPS_LINE)
    query = {
        "MOMessageId": sms.document_id,
        "timestamp": str(sms.timestamp),
        "from": CUSTOMER,
        "to": OPS_LINE,
        "text": "pushed & polled",
    }
    answer = await http.get(f"/provider/push/{TOKEN}", params=query)
    assert answer.status_code == 200
    await asyncio.wait_for(served.slack.wait_for_sms(1), 10)  # long before the next poll
    again = await http.get(f"/provider/push/{TOKEN}", params=query)  # the gateway retried
    assert again.status_code == 200
    lane = service.bridge.lanes[0]
    await lane.poller.poll_once()  # polling brings the same SMS, same id
    await lane.delivery.idle()
    assert served.slack.document_ids() == [sms.document_id]


async def test_a_json_push_threads_under_the_outbound_sms_it_answers(
    served: Served, running: Any
) -> None:
    http, _ = running
    body = {
        "id": "51750a01e4b0d1406c9c5fdb",
        "from": CUSTOMER,
        "recipient": OPS_LINE,
        "text": "yes, 10 is fine",
        "received": "2026-11-30T09:15:00+11:00",
        "mtMesasgeId": "517509fee4b0b1be3f128ef5",  # as one version of the docs spells it
    }
    answer = await http.post(f"/provider/push/{TOKEN}", content=json.dumps(body),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200
    await asyncio.wait_for(served.slack.wait_for_sms(1), 10)
    [posted] = served.slack.channels[OPS].messages
    payload = posted["metadata"]["event_payload"]
    assert payload == {
        "document_id": "51750a01e4b0d1406c9c5fdb",
        "origin_document_id": "517509fee4b0b1be3f128ef5",
    }


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"MOMessageId": "a1", "to": OPS_LINE, "text": "no sender"}, "`from`"),
        ({"MOMessageId": "a1", "from": CUSTOMER, "to": OPS_LINE}, "`text`"),
        ({"from": CUSTOMER, "text": "no id"}, "message id"),
        ({"MOMessageId": "a1", "from": CUSTOMER, "text": "x", "timestamp": "soon"}, "not a time"),
        ({"MOMessageId": "a\\nb", "from": CUSTOMER, "text": "x"}, "documentId"),
    ],
    ids=["no-sender", "no-text", "no-id", "bad-time", "bad-id"],
)
async def test_a_push_that_cannot_be_read_gets_400_and_stores_nothing(
    served: Served, running: Any, query: dict[str, str], reason: str
) -> None:
    http, service = running
    answer = await http.get(f"/provider/push/{TOKEN}", params=query)
    assert answer.status_code == 400
    assert reason in answer.text
    counts = await service.bridge.store.ledger.counts(USERNAME)
    assert sum(counts.values()) == 0


async def test_bodies_too_big_or_not_utf8_get_400(running: Any) -> None:
    http, _ = running
    big = await http.post(f"/provider/push/{TOKEN}", content=b"text=" + b"x" * 20_000)
    assert big.status_code == 400
    binary = await http.post(
        f"/provider/push/{TOKEN}",
        content=b"\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert binary.status_code == 400


async def test_a_wrong_secret_is_404_and_counted_as_a_refused_push(running: Any) -> None:
    from smsbridge.slash.answers import status_answer

    http, service = running
    answer = await http.get(f"/provider/push/{'q' * 40}", params={"from": CUSTOMER, "text": "x"})
    assert answer.status_code == 404
    metrics = service.bridge.metrics.exposition().decode()
    assert 'smsbridge_http_rejected_total{cause="wrong_token"} 1.0' in metrics
    assert 'smsbridge_pushes_rejected_total{cause="wrong_token"} 1.0' in metrics
    text = status_answer(await service.bridge.status(), 0).text
    assert "pushes refused since start: 1" in text


async def test_a_pushed_sms_polled_under_another_id_is_matched_and_posted_once(
    served: Served, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    http, service = running
    sms = served.provider.add(CUSTOMER, "two ids, one SMS", recipient=OPS_LINE)
    query = {
        "MOMessageId": "push-0001",  # the push's own id, not the documentId polling returns
        "timestamp": str(sms.timestamp),
        "from": CUSTOMER,
        "to": OPS_LINE,
        "text": "two ids, one SMS",
    }
    assert (await http.get(f"/provider/push/{TOKEN}", params=query)).status_code == 200
    await asyncio.wait_for(served.slack.wait_for_sms(1), 10)
    lane = service.bridge.lanes[0]
    await lane.poller.poll_once()
    await lane.delivery.idle()
    # once, whichever path came first (the service's own first poll may beat the push)
    assert len(served.slack.document_ids()) == 1
    assert set(served.slack.document_ids()) <= {"push-0001", sms.document_id}
    assert "posted once. The pushed and polled ids differ." in caplog.text
    await lane.poller.poll_once()  # polling re-reads its newest second: known, no new warning
    await lane.delivery.idle()
    assert caplog.text.count("The pushed and polled ids differ.") == 1


async def test_status_tells_pushed_from_polled_only(served: Served, running: Any) -> None:
    from smsbridge.slash.answers import status_answer

    http, service = running
    pushed = {"MOMessageId": "p1", "from": CUSTOMER, "to": OPS_LINE, "text": "by push"}
    assert (await http.get(f"/provider/push/{TOKEN}", params=pushed)).status_code == 200
    served.provider.add(CUSTOMER, "the push for this one was lost", recipient=OPS_LINE)
    lane = service.bridge.lanes[0]
    await lane.poller.poll_once()
    await lane.delivery.idle()
    text = status_answer(await service.bridge.status(), 0).text
    assert "Pushed today: 1 · found only by polling: 1 (pushes are being lost upstream)" in text
    assert "pushes refused since start: 0 · polling every 30s" in text
    metrics = service.bridge.metrics.exposition().decode()
    label = account_label(USERNAME, None)
    assert f'smsbridge_polled_only_total{{account="{label}"}} 1.0' in metrics


@pytest.mark.postgres
async def test_a_push_while_the_database_is_down_gets_503_and_polling_brings_the_sms_later(
    served: Served, make_settings: MakeSettings, postgres_database: str
) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(postgres_database)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    through_proxy = real.set(host="127.0.0.1", port=proxy.port)
    settings = make_settings(
        port=free_port(),
        push={"token": TOKEN},
        poll_interval=1,
        database_url=through_proxy.render_as_string(hide_password=False),
    )
    try:
        async with running_service(settings) as (service, http):
            await proxy.stop()  # the database is gone, for the bridge
            sms = served.provider.add(CUSTOMER, "pushed into an outage", recipient=OPS_LINE)
            query = {
                "MOMessageId": sms.document_id,
                "timestamp": str(sms.timestamp),
                "from": CUSTOMER,
                "to": OPS_LINE,
                "text": "pushed into an outage",
            }
            answer = await http.get(f"/provider/push/{TOKEN}", params=query)
            assert answer.status_code == 503  # the gateway may retry; polling catches it anyway
            assert service.bridge is not None
            metrics = service.bridge.metrics.exposition().decode()
            assert 'smsbridge_pushes_rejected_total{cause="database_unavailable"} 1.0' in metrics
            assert served.slack.document_ids() == []
            await proxy.start()  # the database is back: the next poll brings the SMS
            await asyncio.wait_for(served.slack.wait_for_sms(1), 30)
            assert served.slack.document_ids() == [sms.document_id]
    finally:
        await proxy.stop()


async def test_while_pushes_arrive_polls_only_reconcile_and_a_missed_push_speeds_them_up(
    served: Served, make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(time.time())
    harness = await make_harness(
        clock=clock, push={"token": TOKEN, "reconcile_interval": 30}, poll_interval=5
    )
    poller = harness.lane.poller

    async def polls_after(seconds: float) -> int:
        """Advance the clock, run the scheduled job once: how many polls it made."""
        before = len(served.provider.requests)
        clock.advance(seconds)
        await harness.cycle()
        return len(served.provider.requests) - before

    assert await polls_after(0) == 1
    assert await polls_after(5) == 1  # no push has come yet: polls keep their own pace
    poller.push_arrived()
    assert poller.interval == 30
    assert [await polls_after(5) for _ in range(5)] == [0, 0, 0, 0, 0]
    assert await polls_after(5) == 1  # thirty seconds on: a reconciliation poll
    served.provider.add(CUSTOMER, "a push that never came", recipient=OPS_LINE)
    assert await polls_after(30) == 1
    assert "reached us by polling before any push of them" in caplog.text
    assert poller.interval == 5  # back to polling's own pace until pushes arrive again
    assert await polls_after(5) == 1
    assert served.slack.document_ids() != []


async def test_a_template_with_the_operators_own_parameter_names_is_read(
    served: Served, make_settings: MakeSettings
) -> None:
    settings = make_settings(
        port=free_port(),
        poll_interval=30,
        push={"token": TOKEN, "parameters": {"msg": "id", "sender": "from", "body": "text"}},
    )
    async with running_service(settings) as (_, http):
        query = {"msg": "tpl-1", "sender": CUSTOMER, "body": "sent through a template"}
        answer = await http.get(f"/provider/push/{TOKEN}", params=query)
        assert answer.status_code == 200, answer.text
        await asyncio.wait_for(served.slack.wait_for_sms(1), 10)
    assert served.slack.document_ids() == ["tpl-1"]
