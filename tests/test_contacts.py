"""The contact book: imported from files by the operator, names resolved for `/sms send`."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import OPS, OPS_LINE, USERNAME, MakeHarness, Served
from processes import bridge_env, finish, smsbridge
from smsbridge.contacts_file import ContactEntry
from smsbridge.models import InboundSms
from smsbridge.slack.render import person, render
from smsbridge.slash.recipients import Recipient, find_recipient
from smsbridge.store.store import Store

JANE = ContactEntry("61409560857", "Jane Doe", "")
JANE_SHORT = ContactEntry("61412345678", "Jane", "")


def test_the_longest_name_wins_and_the_text_keeps_its_spacing() -> None:
    found = find_recipient("jane  DOE Your parcel\n  is here", [JANE_SHORT, JANE])
    assert found == Recipient(JANE, "Your parcel\n  is here")
    assert find_recipient("Jane hello", [JANE_SHORT, JANE]) == Recipient(JANE_SHORT, "hello")


def test_a_name_of_two_contacts_is_not_guessed() -> None:
    twin = ContactEntry("61412345679", "Jane Doe", "")
    answer = find_recipient("Jane Doe hi", [JANE, twin])
    assert isinstance(answer, str)
    assert "2 contacts are named Jane Doe" in answer


@given(st.text(max_size=60))
def test_whatever_is_typed_the_answer_is_a_contact_or_a_reason(typed: str) -> None:
    found = find_recipient(typed, [JANE, JANE_SHORT])
    assert isinstance(found, Recipient | str)
    if isinstance(found, Recipient):
        assert found.contact in (JANE, JANE_SHORT)


def test_a_name_is_escaped_where_it_is_shown() -> None:
    assert person("61409560857", "<!channel> & co") == "&lt;!channel&gt; &amp; co (+61 409 560 857)"
    assert person("61409560857") == "+61 409 560 857"
    sms = InboundSms(sender="61409560857", document_id="d1", timestamp=1_700_000_000, text="hi")
    message = render(sms, name="<!here>")
    assert "<!here>" not in str(message.blocks)
    assert "&lt;!here&gt; (+61 409 560 857)" in message.text


async def test_import_reports_what_it_added_changed_and_could_not_read_and_is_idempotent(
    served: Served, tmp_path: Path, make_harness: MakeHarness
) -> None:
    env = bridge_env(served, tmp_path)
    book = tmp_path / "contacts.csv"
    book.write_text("number,name,note\n0409 560 857,Jane Doe,Site 14\nnope,Bad,\n")
    code, out, err = await finish(await smsbridge("contacts", "import", str(book), env=env))
    assert code == 1, err  # some lines could not be read
    assert out.splitlines() == [
        f"{book}: 1 added, 0 changed, 0 unchanged, 1 could not be read",
        "  line 3: 'nope' is not a phone number",
    ]
    code, out, _ = await finish(await smsbridge("contacts", "import", str(book), env=env))
    assert f"{book}: 0 added, 0 changed, 1 unchanged, 1 could not be read" in out
    book.write_text("number,name,note\n0409 560 857,Jane Doe,Site 15\n")
    code, out, _ = await finish(await smsbridge("contacts", "import", str(book), env=env))
    assert code == 0
    assert f"{book}: 0 added, 1 changed, 0 unchanged, 0 could not be read" in out
    # the running bridge names her in Slack
    harness = await make_harness(database_url=env["SMSBRIDGE_DATABASE_URL"])
    served.provider.add("61409560857", "on my way", recipient=OPS_LINE)
    await harness.cycle()
    [post] = served.slack.top_level(OPS)
    assert "Jane Doe (+61 409 560 857)" in post["text"]
    store = Store.open(env["SMSBRIDGE_DATABASE_URL"])
    try:
        assert (await store.contacts.book(USERNAME))["61409560857"].note == "Site 15"
    finally:
        await store.close()


async def test_import_of_an_unreadable_file_exits_2_with_the_reason(
    served: Served, tmp_path: Path
) -> None:
    env = bridge_env(served, tmp_path)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("phone,who\n0409560857,Jane\n")
    code, out, err = await finish(await smsbridge("contacts", "import", str(wrong), env=env))
    assert code == 2
    assert "the first row must be the header number,name" in err
    code, _, err = await finish(
        await smsbridge("contacts", "import", str(tmp_path / "missing.vcf"), env=env)
    )
    assert code == 2
    assert "No such file" in err
    assert "Traceback" not in out + err
