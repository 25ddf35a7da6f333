"""Several provider accounts in one bridge: cursors, ledgers, threads and routes kept apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import INBOX, OPS, PASSWORD, USERNAME, MakeHarness, Served, use_accounts_env
from smsbridge.config import load_settings
from smsbridge.errors import ConfigError
from smsbridge.sim.provider import Account

AGENCY = "agency@reseller"
ALICE = "61409560857"


def two_accounts(served: Served) -> list[dict[str, Any]]:
    served.provider.accounts[AGENCY] = Account("agency pass")
    return [
        {
            "username": USERNAME,
            "password": PASSWORD,
            "url": served.provider_url,
            "routes": {"*": OPS},
        },
        {
            "username": AGENCY,
            "password": "agency pass",
            "url": served.provider_url,
            "routes": {"*": INBOX},
            "alerts": [{"keyword": "urgent", "mention": "here"}],
        },
    ]


async def test_each_account_is_polled_and_routed_on_its_own(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness(accounts=two_accounts(served), provider=None, routes={})
    assert [lane.account.name for lane in harness.bridge.lanes] == [USERNAME, AGENCY]
    mine = served.provider.add(ALICE, "to the first account", timestamp=None)
    theirs = served.provider.add(ALICE, "urgent: to the agency", account=AGENCY)
    await harness.cycle()
    ops = served.slack.channels[OPS].messages
    inbox = served.slack.channels[INBOX].messages
    assert [m["metadata"]["event_payload"]["document_id"] for m in ops] == [mine.document_id]
    assert [m["metadata"]["event_payload"]["document_id"] for m in inbox] == [theirs.document_id]
    assert inbox[0]["blocks"][1]["text"]["text"] == "<!here>"  # the agency's own alert rule
    assert len(ops[0]["blocks"]) == 2  # the first account has no alert rules
    store = harness.bridge.store
    assert await store.cursors.get(USERNAME) is not None
    assert await store.cursors.get(AGENCY) is not None
    assert (
        (await store.ledger.counts(USERNAME))["posted"]
        == (await store.ledger.counts(AGENCY))["posted"]
        == 1
    )


async def test_the_same_document_id_in_two_accounts_is_two_sms(
    served: Served, make_harness: MakeHarness
) -> None:
    served.provider.integer_ids = True  # small integer ids: the two inboxes will share "1"
    harness = await make_harness(accounts=two_accounts(served), provider=None, routes={})
    first = served.provider.add(ALICE, "first account")
    second = served.provider.add(ALICE, "agency", account=AGENCY, document_id=first.document_id)
    assert first.document_id == second.document_id
    await harness.cycle()
    assert len(served.slack.document_ids()) == 2


def test_accounts_and_a_single_account_together_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMSBRIDGE_PROVIDER__USERNAME", "one@reseller")
    monkeypatch.setenv("SMSBRIDGE_PROVIDER__PASSWORD", "x")
    monkeypatch.setenv("SMSBRIDGE_SLACK__BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SMSBRIDGE_SLACK__SIGNING_SECRET", "s")
    monkeypatch.setenv(
        "SMSBRIDGE_ACCOUNTS", '[{"username": "a@r", "password": "p", "routes": {"*": "C0A"}}]'
    )
    with pytest.raises(ConfigError, match="not both"):
        load_settings()


def entry(**fields: Any) -> dict[str, Any]:
    return {"username": "a@r", "password": "p", "routes": {"*": "C0A"}, **fields}


@pytest.mark.parametrize(
    ("accounts", "words"),
    [
        ([entry(), entry(password="q")], "same username twice"),
        ([entry(routes={})], "at least 1 item"),
        ([entry(username="a r")], "must not contain spaces"),
        ([entry(routes={"sales": "C0A"})], "not a phone number"),
        ([entry(routes={"*": "general"})], "not a Slack channel ID"),
        ([entry(colour=1)], "Extra inputs"),
        ([entry(name="field ops!")], "it labels metrics"),
        ([entry(name="ops"), entry(username="b@r", name="ops")], "the same name"),
    ],
)
def test_invalid_accounts_are_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, accounts: list[dict[str, Any]], words: str
) -> None:
    use_accounts_env(monkeypatch, json.dumps(accounts))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert words in " ".join(caught.value.problems)
