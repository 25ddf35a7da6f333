"""Personal data kept where it belongs: masked in logs, absent from metrics labels, gone from
the database once delivery no longer needs it, and erased on request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import OPS, OPS_LINE, USERNAME, MakeHarness, MakeSettings, Served, running_service
from processes import bridge_env, finish, free_port, smsbridge, wait_ready
from smsbridge.contacts_file import ContactEntry
from smsbridge.logs import ConsoleFormatter, JsonFormatter, setup_logging
from smsbridge.privacy import Phone, account_label, mask_number, mask_written_numbers
from smsbridge.store.contacts import Saved
from smsbridge.store.schema import ledger, outbound
from smsbridge.store.store import Store

ALICE = "61409560857"


@pytest.fixture
def masked() -> Iterator[None]:
    setup_logging()
    yield
    setup_logging()  # back to the default: masked


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("smsbridge.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("61409560857", "+61 4xx xxx 857"),
        ("447700900123", "+44 7xxx xxx123"),
        ("+61 409 560 857", "+61 4xx xxx 857"),
        ("12345", "+1 2345"),  # too short to hide anything that matters
        ("not-a-number", "n"),
    ],
)
def test_numbers_are_masked_to_country_first_digit_and_last_three(number: str, shown: str) -> None:
    assert mask_number(number).startswith(shown)


@given(st.from_regex(r"[1-9][0-9]{9,14}", fullmatch=True))
def test_a_masked_number_never_shows_more_than_its_first_and_last_digits(digits: str) -> None:
    shown = mask_number(digits)
    assert digits not in shown.replace(" ", "").replace("+", "")
    assert sum(ch.isdigit() for ch in shown) <= len(digits) - 3 or len(digits) <= 7


def test_numbers_written_with_a_plus_in_free_text_are_masked_and_ids_are_not() -> None:
    text = "Invalid destination +61409560857 (+61 409 560 857); document 51750019871234"
    assert mask_written_numbers(text) == (
        "Invalid destination +61 4xx xxx 857 (+61 4xx xxx 857); document 51750019871234"
    )


def test_console_and_json_lines_mask_numbers_unless_full_detail_is_on(masked: None) -> None:
    line = record("SMS from %s: %s", Phone(ALICE), "provider says +61409560857", line=OPS_LINE)
    for formatter in (ConsoleFormatter(), JsonFormatter()):
        written = formatter.format(line)
        assert ALICE not in written
        assert "+61 4xx xxx 857" in written
    setup_logging(personal_data=True)
    document = json.loads(JsonFormatter().format(line))
    assert document["message"] == f"SMS from {ALICE}: provider says +61409560857"


def test_account_labels_are_the_chosen_name_or_a_stable_hash() -> None:
    assert account_label(USERNAME, "field-ops") == "field-ops"
    hashed = account_label(USERNAME, None)
    assert hashed == account_label(USERNAME, None)
    assert USERNAME not in hashed
    assert hashed != account_label("other@reseller", None)


async def test_metrics_answer_only_with_the_bearer_token_when_one_is_set(
    make_settings: MakeSettings,
) -> None:
    token = "m" * 24
    settings = make_settings(port=free_port(), metrics_token=token)
    async with running_service(settings) as (_, http):
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 24})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "smsbridge_polls_total" in right.text
        assert (await http.get("/healthz")).status_code == 200  # the rest stays open


async def test_full_detail_in_logs_is_announced_loudly_at_start(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path, SMSBRIDGE_LOG_PERSONAL_DATA="true")
    process = await smsbridge("run", "--log-format", "json", env=env)
    await asyncio.wait_for(wait_ready(env["PORT"], process), 30)
    process.terminate()
    code, _, err = await finish(process)
    assert code == 0, err
    warnings = [json.loads(line) for line in err.splitlines() if "PERSONAL_DATA" in line]
    assert warnings
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["cause"] == "personal_data_in_logs"


async def _ledger_texts(store: Store) -> list[tuple[str, str, str | None]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(ledger.c.state, ledger.c.text, ledger.c.text_hash))
        return [(row.state, row.text, row.text_hash) for row in rows]


@pytest.mark.parametrize("drop", [True, False], ids=["dropped", "kept"])
async def test_the_text_leaves_the_ledger_once_posted_unless_kept(
    served: Served, make_harness: MakeHarness, drop: bool
) -> None:
    harness = await make_harness(drop_posted_text=drop)
    served.provider.add(ALICE, "gate code is 4521", recipient=OPS_LINE)
    await harness.cycle()
    [(state, text, digest)] = await _ledger_texts(harness.bridge.store)
    assert state == "posted"
    assert text == ("" if drop else "gate code is 4521")
    assert digest is not None
    assert len(digest) == 64
    assert "gate code is 4521" in json.dumps(served.slack.top_level(OPS))  # Slack has it


async def test_retention_forgets_old_sms_sent_from_slack(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    outbox = harness.bridge.store.outbox
    seq = await outbox.record(USERNAME, OPS, "1.0001", None, "U0ALICE", ALICE, OPS_LINE, "hi")
    queued = await outbox.record(USERNAME, OPS, "1.0002", None, "U0ALICE", ALICE, OPS_LINE, "yo")
    [sms] = [s for s in await outbox.waiting(USERNAME) if s.slack_ts == "1.0001"]
    await outbox.sent(sms, "provider-1")
    async with harness.bridge.store.engine.begin() as conn:
        await conn.execute(outbound.update().values(created_at=1.0))  # long ago
    assert seq is not None
    assert queued is not None
    assert await outbox.prune(USERNAME, before=1000.0) == 1  # the sent one; queued stays
    assert [s.slack_ts for s in await outbox.waiting(USERNAME)] == ["1.0002"]


async def test_sms_sent_from_slack_lose_their_text_once_sent(
    served: Served, make_harness: MakeHarness
) -> None:
    harness = await make_harness()
    outbox = harness.bridge.store.outbox
    await outbox.record(USERNAME, OPS, "1.0001", None, "U0ALICE", ALICE, OPS_LINE, "secret")
    [sms] = await outbox.waiting(USERNAME)
    await outbox.sent(sms, "provider-1")
    stored = await outbox.get(OPS, "1.0001")
    assert stored is not None
    assert stored.text == ""


async def test_forget_erases_a_person_and_a_later_poll_posts_nothing_again(
    served: Served, make_harness: MakeHarness, tmp_path: Path
) -> None:
    harness = await make_harness()
    store = harness.bridge.store
    served.provider.add(ALICE, "my gate code is 4521", recipient=OPS_LINE)
    served.provider.add("61412345678", "someone else", recipient=OPS_LINE)
    await harness.cycle()
    await store.outbox.record(USERNAME, OPS, "1.0001", None, "U0ALICE", ALICE, OPS_LINE, "hi")
    await store.optouts.set(USERNAME, OPS_LINE, ALICE, out=True)
    env = bridge_env(served, tmp_path)
    code, out, err = await finish(await smsbridge("forget", "0409 560 857", env=env))
    assert code == 0, err
    assert "Forgot +61 409 560 857 in the database: 1 SMS received, 1 SMS sent" in out
    assert "Kept: 1 opt-out(s)" in out
    assert "Not removed: the messages already posted in Slack" in out
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(ledger.c.sender, ledger.c.text, ledger.c.state))).all()
        sent = (await conn.execute(select(outbound.c.recipient))).all()
    assert ALICE not in {row.sender for row in rows}
    assert "my gate code is 4521" not in {row.text for row in rows}
    assert sent == []
    assert await store.optouts.is_out(USERNAME, OPS_LINE, ALICE)  # still never texted
    await harness.cycle()  # the gateway lists the SMS again: its id is still known
    assert len(served.slack.document_ids()) == 2
    code, out, _ = await finish(await smsbridge("forget", "+61409560857", "--opt-out-too", env=env))
    assert code == 0
    assert "1 opt-out(s)." in out
    assert not await store.optouts.is_out(USERNAME, OPS_LINE, ALICE)


async def test_forget_refuses_what_is_not_a_number(served: Served, tmp_path: Path) -> None:
    code, out, err = await finish(
        await smsbridge("forget", "Jane", env=bridge_env(served, tmp_path))
    )
    assert code == 2
    assert "'Jane' is not a phone number" in err
    assert "Traceback" not in out + err


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'people.db'}"
    return str(request.getfixturevalue("postgres_database"))


async def test_contact_book_and_erasure_on_each_database(
    served: Served, make_harness: MakeHarness, database_url: str
) -> None:
    harness = await make_harness(database_url=database_url)
    contacts = harness.bridge.store.contacts
    bob = "61412345678"
    first = await contacts.save_many(
        USERNAME, [ContactEntry(ALICE, "Jane Doe", "Site 14"), ContactEntry(bob, "Bob", "")]
    )
    assert first == Saved(added=2, changed=0, unchanged=0)
    again = await contacts.save_many(
        USERNAME, [ContactEntry(ALICE, "Jane Doe", "Site 15"), ContactEntry(bob, "Bob", "")]
    )
    assert again == Saved(added=0, changed=1, unchanged=1)
    entries, total = await contacts.listing(USERNAME, limit=1)
    assert (total, entries) == (2, [ContactEntry(bob, "Bob", "")])
    served.provider.add(ALICE, "my gate code", recipient=OPS_LINE)
    await harness.cycle()
    gone = await harness.bridge.store.erasure.forget(ALICE)
    assert (gone.received, gone.contacts, gone.threads) == (1, 1, 1)
    entries, total = await contacts.listing(USERNAME, limit=10)
    assert [entry.number for entry in entries] == [bob]
    await harness.cycle()  # the gateway lists her SMS again: known by its id, not posted again
    assert len(served.slack.document_ids()) == 1
