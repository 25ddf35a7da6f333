"""`smsbridge check`: can this configuration work? Each check says what is wrong and the fix."""

from __future__ import annotations

import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from smsbridge.config import Account, Settings
from smsbridge.errors import ProviderError, SmsBridgeError
from smsbridge.provider.client import ProviderClient
from smsbridge.slack.errors import classify, error_code
from smsbridge.slack.poster import close_client, make_client
from smsbridge.store.schema import LATEST
from smsbridge.store.store import Store
from smsbridge.urls import hide_password


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings) -> list[CheckResult]:
    results: list[CheckResult] = [
        CheckResult("configuration", True, "all settings present and valid")
    ]
    results.append(await _check_database(settings))
    accounts = settings.provider_accounts
    for account in accounts:
        results.append(await _check_provider(account, titled=len(accounts) > 1))
    slack = make_client(
        settings.slack.bot_token.get_secret_value(), settings.slack.api_url, settings.slack.timeout
    )
    try:
        return await _check_slack(settings, slack, results)
    finally:
        await close_client(slack)


async def _check_slack(
    settings: Settings, slack: AsyncWebClient, results: list[CheckResult]
) -> list[CheckResult]:
    accounts = settings.provider_accounts
    try:
        auth = await slack.auth_test()
    except SlackApiError as error:
        results.append(CheckResult("Slack token", False, str(classify(error, "-"))))
        return results
    except Exception as error:
        results.append(
            CheckResult(
                "Slack token",
                False,
                f"cannot reach {hide_password(settings.slack.api_url)} ({type(error).__name__})",
            )
        )
        return results
    results.append(
        CheckResult("Slack token", True, f"bot {auth.get('user')} in workspace {auth.get('team')}")
    )
    for account in accounts:
        for number, channel in sorted(account.routes.items()):
            results.append(await _check_channel(slack, number, channel))
    return results


async def _check_database(settings: Settings) -> CheckResult:
    store = Store.open(settings.database_url)
    try:
        version = await store.version()
    except SmsBridgeError as error:
        return CheckResult("database", False, str(error))
    except Exception as error:
        return CheckResult("database", False, str(store.unusable(error)))
    finally:
        await store.close()
    if version > LATEST:
        return CheckResult(
            "database", False, f"schema version {version} is newer than this release ({LATEST})"
        )
    state = (
        "up to date" if version == LATEST else f"version {version}, upgraded to {LATEST} at start"
    )
    return CheckResult("database", True, f"schema {state}")


async def _check_provider(account: Account, *, titled: bool) -> CheckResult:
    name = f"SMS provider {account.name}" if titled else "SMS provider"
    client = ProviderClient.for_account(account.provider)
    try:
        await client.fetch_page(int(time.time()))
    except ProviderError as error:
        return CheckResult(name, False, str(error))
    finally:
        await client.aclose()
    return CheckResult(
        name, True, f"{account.name} accepted by {hide_password(account.provider.url)}"
    )


async def _check_channel(slack: AsyncWebClient, number: str, channel: str) -> CheckResult:
    label = f"route {number} -> {channel}"
    try:
        info = (await slack.conversations_info(channel=channel)).get("channel")
    except SlackApiError as error:
        if error_code(error)[1] == "channel_not_found":
            return CheckResult(
                label, False, "channel not found; check the ID, or invite the bot if it is private"
            )
        return CheckResult(label, False, str(classify(error, channel)))
    except Exception as error:
        return CheckResult(
            label, False, f"Slack's answer could not be read ({type(error).__name__})"
        )
    if not isinstance(info, dict):
        return CheckResult(label, False, "Slack's answer held no channel; try again")
    name = f"#{info.get('name', channel)}"
    if info.get("is_archived"):
        return CheckResult(label, False, f"{name} is archived; unarchive it or route elsewhere")
    if info.get("is_member"):
        return CheckResult(label, True, f"{name}: the bot is a member")
    if info.get("is_private"):
        return CheckResult(
            label, False, f"{name} is private: invite the bot with /invite @smsbridge"
        )
    return CheckResult(label, True, f"{name}: the bot joins on its first post")
