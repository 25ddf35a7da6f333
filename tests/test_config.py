"""Settings: the documented names, Slack's usual names, a TOML file, and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import use_accounts_env
from smsbridge.config import load_settings
from smsbridge.errors import ConfigError

COMPLETE = {
    "SMSBRIDGE_PROVIDER__USERNAME": "1234321@reseller",
    "SMSBRIDGE_PROVIDER__PASSWORD": "p@ss word&=",
    "SMSBRIDGE_SLACK__BOT_TOKEN": "xoxb-123",
    "SMSBRIDGE_SLACK__SIGNING_SECRET": "shh",
    "SMSBRIDGE_ROUTES": '{"61411001001": "C0OPS", "*": "C0ALL"}',
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith(("SMSBRIDGE_", "SLACK_")) or name == "PORT":
            monkeypatch.delenv(name)
    return monkeypatch


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in {**COMPLETE, **values}.items():
        monkeypatch.setenv(name, value)


def test_defaults_and_documented_names(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env)
    settings = load_settings()
    assert settings.provider is not None
    assert settings.provider.url == "https://mc5.smartmessagingservices.net"
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite:///./smsbridge.db"
    assert (settings.poll_interval, settings.initial_lookback, settings.thread_idle_hours) == (
        5.0,
        900,
        24.0,
    )
    assert settings.port == 3000
    assert settings.provider is not None
    assert settings.provider.password.get_secret_value() == "p@ss word&="


def test_routing_uses_the_line_then_the_default(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env, SMSBRIDGE_ROUTES='{"+61 411 001 001": "C0OPS", "*": "C0ALL"}')
    [account] = load_settings().provider_accounts
    assert account.channel_for("61411001001") == "C0OPS"
    assert account.channel_for("61400000000") == "C0ALL"
    assert account.channel_for(None) == "C0ALL"


def test_without_a_default_route_unknown_lines_are_unrouted(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env, SMSBRIDGE_ROUTES='{"61411001001": "C0OPS"}')
    assert load_settings().provider_accounts[0].channel_for("61400000000") is None


def test_slack_conventional_names_are_accepted_and_prefixed_ones_win(
    clean_env: pytest.MonkeyPatch,
) -> None:
    set_env(clean_env)
    clean_env.delenv("SMSBRIDGE_SLACK__SIGNING_SECRET")
    clean_env.setenv("SLACK_SIGNING_SECRET", "from-slack-name")
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-loses")
    settings = load_settings()
    assert settings.slack.signing_secret.get_secret_value() == "from-slack-name"
    assert settings.slack.bot_token.get_secret_value() == "xoxb-123"


def test_fractional_poll_interval_and_port(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env, SMSBRIDGE_POLL_INTERVAL="0.5", PORT="8080")
    settings = load_settings()
    assert (settings.poll_interval, settings.port) == (0.5, 8080)


def test_toml_file_holds_the_same_settings_and_env_wins(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "smsbridge.toml"
    config.write_text(
        'poll_interval = 2.5\nroutes = { "*" = "C0TOML" }\n'
        '[provider]\nusername = "toml@reseller"\npassword = "toml"\n'
        '[slack]\nbot_token = "xoxb-toml"\nsigning_secret = "toml"\n'
    )
    clean_env.setenv("SMSBRIDGE_POLL_INTERVAL", "7")
    settings = load_settings(config)
    assert settings.provider is not None
    assert settings.provider.username == "toml@reseller"
    assert settings.routes == {"*": "C0TOML"}
    assert settings.poll_interval == 7.0


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")


def test_every_problem_is_listed_at_once_with_its_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    problems = "\n".join(caught.value.problems)
    assert (
        "SMSBRIDGE_PROVIDER__USERNAME is not set: set it to your SMS provider user name" in problems
    )
    assert "SMSBRIDGE_PROVIDER__PASSWORD is not set" in problems
    assert "SMSBRIDGE_SLACK__BOT_TOKEN is not set" in problems
    assert "SMSBRIDGE_ROUTES is empty or not set" in problems


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SMSBRIDGE_POLL_INTERVAL", "0.1", "greater than or equal to 0.5"),
        ("SMSBRIDGE_ROUTES", "{not json", "is not valid JSON"),
        ("SMSBRIDGE_ROUTES", '{"*": "general"}', "not a Slack channel ID"),
        ("SMSBRIDGE_ROUTES", '{"sales": "C0ALL"}', "not a phone number"),
        ("SMSBRIDGE_ROUTES", "{}", "is empty or not set"),
        ("SMSBRIDGE_SLACK__BOT_TOKEN", "xoxp-user-token", "starting with xoxb-"),
        ("SMSBRIDGE_PROVIDER__USERNAME", "has space", "must not contain spaces"),
        ("SMSBRIDGE_PROVIDER__URL", "ftp://x", "http(s) URL"),
        ("SMSBRIDGE_DATABASE_URL", "mysql://x", "sqlite:///"),
    ],
)
def test_invalid_values_name_the_variable_and_the_fix(
    clean_env: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    set_env(clean_env, **{name: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    [problem] = caught.value.problems
    assert problem.startswith(name)
    assert words in problem


def test_secrets_never_show_in_reprs_or_errors(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env, SMSBRIDGE_POLL_INTERVAL="nope")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "p@ss word" not in str(caught.value)
    set_env(clean_env, SMSBRIDGE_POLL_INTERVAL="5")
    text = repr(load_settings())
    assert "p@ss word" not in text
    assert "xoxb-123" not in text
    assert "shh" not in text


def test_the_readme_alerts_example_loads(clean_env: pytest.MonkeyPatch) -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"export SMSBRIDGE_ALERTS='(.*?)'", readme, re.DOTALL)
    assert example is not None
    set_env(clean_env, SMSBRIDGE_ALERTS=example.group(1))
    rules = load_settings().provider_accounts[0].alerts
    assert [rule.mention for rule in rules] == [
        ["<!subteam^S0ONCALL>"],
        ["<!here>"],
        ["<@U0CAREMGR>"],
    ]
    assert rules[1].matches("61400000000", "I have chest pain")
    assert rules[2].senders == ["61409560857"]


def test_the_readme_accounts_example_loads(clean_env: pytest.MonkeyPatch) -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"export SMSBRIDGE_ACCOUNTS='(.*?)'", readme, re.DOTALL)
    assert example is not None
    use_accounts_env(clean_env, example.group(1))
    accounts = load_settings().provider_accounts
    assert [a.name for a in accounts] == ["1234321@reseller", "7654321@reseller"]
    assert accounts[1].channel_for("61400000000") == "C0CLINIC"
    assert accounts[1].alerts[0].mention == ["<!subteam^S0ONCALL>"]


def test_routes_may_turn_replies_on_per_route_in_both_forms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import use_accounts_env

    use_accounts_env(
        monkeypatch,
        '[{"username": "a@reseller", "password": "p", "routes": '
        '{"0411 001 001": {"channel": "C0OPS", "replies": true}, "*": "C0INBOX"}}]',
    )
    [account] = load_settings().provider_accounts
    assert account.routes == {"61411001001": "C0OPS", "*": "C0INBOX"}
    assert account.replies_allowed("61411001001")
    assert not account.replies_allowed("61499999999")  # the default route: replies off
