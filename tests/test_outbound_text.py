"""What goes out by SMS: Slack markup as a phone shows it, its size in parts, opt-out words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsbridge.optouts import OptChange, opt_change
from smsbridge.provider.encoding import sms_size
from smsbridge.slack.phone_text import mentioned_users, to_phone_text
from smsbridge.slack.render import escape


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        ("Hi <@U0JANE>, see you at 10", "Hi @Jane Doe, see you at 10"),
        ("ask <@U0NOBODY>", "ask @someone"),
        ("ask <@U0X|bob>", "ask @bob"),
        ("in <#C0OPS|field-ops>", "in #field-ops"),
        ("<!here> gate is open", "@here gate is open"),
        ("<!subteam^S0ONCALL|@oncall> please", "@oncall please"),
        ("book at <https://x.example/b?a=1&amp;b=2|our site>", "book at our site (https://x.example/b?a=1&b=2)"),
        ("see <https://x.example>", "see https://x.example"),
        ("mail <mailto:help@x.example|help@x.example>", "mail help@x.example"),
        ("5 &lt; 6 &amp;&amp; 7 &gt; 6", "5 < 6 && 7 > 6"),
        ("great :thumbsup: :white_check_mark:", "great 👍 ✅"),
        ("an unknown :not_an_emoji_code:", "an unknown :not_an_emoji_code:"),
        ("typed as text: &lt;@U0JANE&gt;", "typed as text: <@U0JANE>"),
    ],
)  # fmt: skip
def test_slack_markup_becomes_what_a_phone_shows(markup: str, shown: str) -> None:
    assert to_phone_text(markup, {"U0JANE": "Jane Doe"}) == shown


def test_mentioned_users_are_found_for_a_name_lookup() -> None:
    assert mentioned_users("<@U1> and <@U2|x> but not <#C1> or &lt;@U3&gt;") == {"U1", "U2"}


@given(st.text(alphabet=st.characters(blacklist_characters=":"), max_size=300))
def test_plain_text_survives_slacks_escaping_unchanged(text: str) -> None:
    # Slack escapes &, < and > in what people type; converting back gives exactly what they typed.
    assert to_phone_text(escape(text)) == text


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2),
        ("é" * 160, "GSM-7", 1),  # in the GSM-7 alphabet
        ("ê" * 70, "UTF-16", 1),  # not in it: UTF-16
        ("ê" * 71, "UTF-16", 2),
        ("👍" * 35, "UTF-16", 1),  # outside the BMP: two code units each
        ("👍" * 36, "UTF-16", 2),
        ("a" * 67 * 3 + "ê", "UTF-16", 4),
    ],
)
def test_sms_size_follows_the_encoding(text: str, encoding: str, parts: int) -> None:
    size = sms_size(text)
    assert (size.encoding, size.parts) == (encoding, parts)


@given(st.text(max_size=1000))
def test_sms_size_parts_hold_the_whole_text(text: str) -> None:
    size = sms_size(text)
    assert size.parts >= 1
    assert size.units <= size.parts * size.per_part
    assert size.parts == 1 or size.units > (size.parts - 1) * size.per_part


@pytest.mark.parametrize("text", ["STOP", " stop ", "Unsubscribe", "QUIT\n", "stopall", "End"])
def test_opt_out_words_opt_out(text: str) -> None:
    assert opt_change(text, opted_out=False) is OptChange.OUT


@pytest.mark.parametrize("text", ["stop by at 5", "please stop", "STOP!", "", "cancel my 10am"])
def test_longer_texts_are_ordinary_sms(text: str) -> None:
    assert opt_change(text, opted_out=False) is None


def test_start_words_opt_back_in_only_after_an_opt_out() -> None:
    assert opt_change("yes", opted_out=False) is None  # an answer, not a keyword
    assert opt_change(" YES ", opted_out=True) is OptChange.IN
    assert opt_change("unstop", opted_out=True) is OptChange.IN
    assert opt_change("start", opted_out=True) is OptChange.IN


def test_only_unambiguous_keywords_get_a_notice_in_the_thread() -> None:
    from smsbridge.optouts import notice

    assert notice(" stop ") is not None
    assert notice("START") is not None
    assert notice("yes") is None  # most often an answer
    assert notice("stop by at 5") is None
