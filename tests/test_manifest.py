"""manifest.yml: valid by Slack's rules, matching the app's routes, scopes = what we call."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from smsbridge.slash.app import EVENTS_PATH
from smsbridge.slash.command import COMMAND

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "smsbridge"

# The rules of Slack's app manifest schema (version 1) for the parts this manifest uses:
# required fields, lengths, URL and command patterns, and no unknown keys.
URL = {"type": "string", "pattern": r"^https?://", "maxLength": 3000}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["display_information"],
    "additionalProperties": False,
    "properties": {
        "_metadata": {"type": "object"},
        "display_information": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "background_color": {
                    "type": "string",
                    "pattern": r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$",
                },
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
            },
        },
        "features": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "bot_user": {
                    "type": "object",
                    "required": ["display_name"],
                    "additionalProperties": False,
                    "properties": {
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                },
                "slash_commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["command", "description"],
                        "additionalProperties": False,
                        "properties": {
                            "command": {
                                "type": "string",
                                "minLength": 2,
                                "maxLength": 32,
                                "pattern": "^/",
                            },
                            "url": URL,
                            "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "oauth_config": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scopes": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "bot": {
                            "type": "array",
                            "items": {"type": "string", "maxLength": 50},
                            "maxItems": 255,
                        }
                    },
                }
            },
        },
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
                "interactivity": {"type": "object"},
                "event_subscriptions": {"type": "object"},
            },
        },
    },
}

# Every Slack Web API method the service may call, and the bot scopes that let it.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "apps.connections.open": set(),  # made with the app-level token (connections:write)
    "chat.postMessage": {"chat:write"},
    "conversations.join": {"channels:join"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.info": {"channels:read", "groups:read"},
    "users.info": {"users:read"},
    "reactions.add": {"reactions:write"},
    "reactions.remove": {"reactions:write"},
    "usergroups.users.list": {"usergroups:read"},
}
COMMAND_SCOPES = {"commands"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return loaded


def test_manifest_follows_slacks_schema_rules(manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, SCHEMA)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("display_information", "name"), "x" * 36),  # names are at most 35 characters
        (("features", "slash_commands", 0, "command"), "sms"),  # commands start with /
    ],
    ids=["name-too-long", "command-without-slash"],
)
def test_the_schema_rules_do_catch_mistakes(
    manifest: dict[str, Any], where: tuple[str | int, ...], value: str
) -> None:
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    parent = broken
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = value  # one rule broken per case
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_the_command_and_its_url_match_the_app(manifest: dict[str, Any]) -> None:
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert urlparse(command["url"]).path == EVENTS_PATH
    assert urlparse(command["url"]).scheme == "https"
    assert command["usage_hint"].startswith("history")


def test_replies_are_received_as_message_events_at_the_same_url(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]
    assert urlparse(events["request_url"]).path == EVENTS_PATH
    assert set(events["bot_events"]) == {"message.channels", "message.groups"}
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"channels:history", "groups:history"} <= granted  # what those events need


def slack_methods_called() -> set[str]:
    """Slack API methods the service's code calls, read from its source (stand-ins excluded)."""
    called: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if "sim" in path.relative_to(SOURCE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            # the SDK's method names (chat_postMessage) and the Web API's own (chat.postMessage)
            if name and re.fullmatch(
                r"(auth|chat|conversations|users|apps|reactions|usergroups)[_.][a-zA-Z_.]+", name
            ):
                called.add(name.replace("_", "."))
    return called


def test_the_scan_finds_the_calls_we_know_of() -> None:
    assert {
        "chat.postMessage",
        "conversations.join",
        "users.info",
        "auth.test",
    } <= slack_methods_called()


def test_scopes_cover_every_method_called_and_nothing_more(manifest: dict[str, Any]) -> None:
    called = slack_methods_called()
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add the scopes of {unknown} to METHOD_SCOPES and to manifest.yml"
    needed = set().union(*(METHOD_SCOPES[m] for m in called)) | COMMAND_SCOPES
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    assert needed - granted == set(), "manifest.yml lacks scopes the code needs"
    assert granted - needed == set(), "manifest.yml asks for scopes the code never uses"
