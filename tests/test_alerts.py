"""On-call alerts: who gets pinged, and that only our mention can ping anyone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conftest import OPS, MakeHarness, Served
from smsbridge.alerts import AlertRule, alert_for

ALICE, BOB = "61409560857", "61412345678"


def rule(**fields: object) -> AlertRule:
    return AlertRule.model_validate({"mention": "<!subteam^S0ONCALL>", **fields})


def test_keyword_matches_whole_words_in_any_case() -> None:
    rules = [rule(keyword="urgent")]
    assert alert_for(rules, ALICE, "This is URGENT, call me") is not None
    assert alert_for(rules, ALICE, "not urgently") is None


def test_regex_matches_as_written() -> None:
    rules = [rule(regex=r"\b(chest pain|can't breathe)\b")]
    assert alert_for(rules, ALICE, "I have chest pain") is not None
    assert alert_for(rules, ALICE, "Chest Pain") is None


def test_sender_rule_and_combined_conditions() -> None:
    rules = [rule(senders=[BOB], keyword="late")]
    assert alert_for(rules, BOB, "running late") is not None
    assert alert_for(rules, BOB, "on time") is None  # sender matches, keyword does not
    assert alert_for(rules, ALICE, "running late") is None  # keyword matches, sender does not


def test_no_match_no_alert() -> None:
    assert alert_for([rule(keyword="fire")], ALICE, "all good") is None
    assert alert_for([], ALICE, "fire") is None


def test_matching_rules_combine_their_mentions_once_each() -> None:
    rules = [
        rule(keyword="fire", mention="<!here> S0ONCALL", reply_broadcast=False),
        rule(keyword="fire", mention="U0BOSS here", reply_broadcast=True),
    ]
    alert = alert_for(rules, ALICE, "fire!")
    assert alert is not None
    assert alert.mention == "<!here> <!subteam^S0ONCALL> <@U0BOSS>"
    assert alert.reply_broadcast is True


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"keyword": "x", "mention": "@everyone"}, "is not one of"),
        ({"regex": "(", "mention": "here"}, "does not compile"),
        ({"mention": "here"}, "needs a keyword, a regex or senders"),
        ({"keyword": "x"}, "Field required"),
        ({"keyword": "x", "mention": "here", "colour": "red"}, "Extra inputs"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        AlertRule.model_validate(fields)


async def test_an_alert_mentions_outside_the_escaped_text_and_broadcasts_replies(
    served: Served,
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(
        alerts=[{"keyword": "urgent", "mention": "<!subteam^S0ONCALL>"}],
    )
    origin = served.provider.new_id()
    served.provider.add(ALICE, "hello", origin=origin)
    served.provider.add(ALICE, "URGENT <!channel> help", origin=origin)
    served.provider.add(BOB, "nothing urgent-free here <@U0CEO>")  # matches, top-level
    await harness.cycle()
    parent, *_ = served.slack.top_level(OPS)
    [reply] = served.slack.replies(OPS, parent["ts"])
    assert reply["subtype"] == "thread_broadcast"
    mention_block, text_block = reply["blocks"][1], reply["blocks"][2]
    assert mention_block["text"]["text"] == "<!subteam^S0ONCALL>"
    assert text_block["text"]["text"] == "URGENT &lt;!channel&gt; help"
    assert reply["text"].startswith("<!subteam^S0ONCALL> ")
    assert "<!channel>" not in reply["text"]
    assert "blocks" in parent
    assert "subtype" not in parent
    assert len(parent["blocks"]) == 2  # no alert on "hello": header and text only
