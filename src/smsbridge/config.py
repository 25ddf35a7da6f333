"""Settings: environment variables (prefix `SMSBRIDGE_`, nesting with `__`), an optional TOML file.

Precedence, highest first: `SMSBRIDGE_*` variables, Slack's usual `SLACK_BOT_TOKEN` /
`SLACK_SIGNING_SECRET` / `SLACK_APP_TOKEN`, the TOML file given with `--config`, then defaults.
Secrets are `SecretStr`, so they print as `**********` in logs, reprs and errors.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import phonenumbers
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from smsbridge.alerts import AlertRule
from smsbridge.errors import ConfigError
from smsbridge.numbers import normalise_number
from smsbridge.privacy import account_label

DEFAULT_ROUTE = "*"
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,30}$")


DEFAULT_PROVIDER_URL = "https://mc5.smartmessagingservices.net"
_HTTP_URL = re.compile(r"^https?://[^\s/]+")


def _provider_url(value: str) -> str:
    if not _HTTP_URL.match(value):
        raise ValueError("must be an http(s) URL such as https://mc5.smartmessagingservices.net")
    return value.rstrip("/")


_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def _account_name(value: str | None) -> str | None:
    if value is not None and not _ACCOUNT_NAME.match(value):
        raise ValueError(
            "must be 1-40 letters, digits, '.', '_' or '-' (it labels metrics), e.g. field-ops"
        )
    return value


def _user_name(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain spaces (the provider refuses such user names)")
    return value


class RouteSettings(BaseModel):
    """A route written as an object: its channel, and whether people may answer from Slack."""

    model_config = ConfigDict(extra="forbid")

    channel: str
    replies: bool = False  # sending costs money and reaches customers: off unless asked for


def _check_routes(value: dict[str, str | RouteSettings]) -> dict[str, str | RouteSettings]:
    for route in value.values():
        channel = route.channel if isinstance(route, RouteSettings) else route
        if not _CHANNEL_ID.match(channel):
            raise ValueError(
                f"{channel!r} is not a Slack channel ID; use the ID (e.g. C0123ABCD, shown at "
                "the bottom of the channel's details), not the channel name"
            )
    return value


ProviderUrl = Annotated[str, AfterValidator(_provider_url)]
UserName = Annotated[str, Field(min_length=1), AfterValidator(_user_name)]
# A route is a channel ID, or {"channel": ..., "replies": true} to let people answer by SMS.
Routes = Annotated[dict[str, str | RouteSettings], AfterValidator(_check_routes)]


class ProviderSettings(BaseModel):
    """How to reach one provider account. A new connection setting goes here, and only here."""

    url: ProviderUrl = DEFAULT_PROVIDER_URL
    username: UserName
    # What metrics and /sms status call this account; by default a short hash of the username,
    # since a login is no business of a metrics store.
    name: Annotated[str | None, AfterValidator(_account_name)] = None
    password: SecretStr = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=300)  # seconds for one whole page
    # The provider can enable a status query per account: then each SMS sent from Slack gets
    # its final word (delivered, or why not) on the person's message.
    status_query: bool = False


class SlackSettings(BaseModel):
    bot_token: SecretStr
    signing_secret: SecretStr
    api_url: str = "https://slack.com/api/"
    app_token: SecretStr | None = None
    timeout: int = Field(default=30, ge=1, le=300)  # seconds for one Slack API call
    post_interval: float = Field(default=1.0, ge=0, le=60)  # seconds per post to a channel
    # Posts that may go to one channel at once after a quiet spell. Slack allows "short bursts
    # over 1" without a number; 4 posts a typical flurry at once, and 429s stay the hard rule.
    post_burst: int = Field(default=4, ge=1, le=20)

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp- (for Socket Mode)")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not _HTTP_URL.match(value):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"


PushField = Literal["id", "from", "to", "text", "timestamp", "mtMessageId"]


class PushSettings(BaseModel):
    """What the gateway may push to us. The token is the secret part of the URLs it calls."""

    token: SecretStr | None = None
    # While pushes arrive, polls only reconcile (catch what a push missed): this often.
    reconcile_interval: float = Field(default=30.0, ge=1, le=3600)
    # The operator's own parameter names in a Push MO template, mapped to ours:
    # {"sender": "from", "body": "text"}. The documented names are always read too.
    parameters: dict[str, PushField] = Field(default_factory=dict, max_length=20)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters; make one with: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value


class AccountSettings(ProviderSettings):
    """One provider account in SMSBRIDGE_ACCOUNTS: how to reach it, its routes, alert rules.

    The single-account variables (SMSBRIDGE_PROVIDER__*, SMSBRIDGE_ROUTES, SMSBRIDGE_ALERTS)
    make one of these too, so every account is read the same way.
    """

    model_config = ConfigDict(extra="forbid")

    routes: Routes = Field(min_length=1)
    alerts: list[AlertRule] = Field(default_factory=list)


@dataclass(frozen=True)
class Account:
    """A provider account as the bridge runs it: connection, routes, alert rules."""

    provider: ProviderSettings
    routes: dict[str, str]  # line (or "*") -> channel
    alerts: tuple[AlertRule, ...]
    replies: frozenset[str] = frozenset()  # the route keys whose threads may be answered

    @property
    def name(self) -> str:
        """The provider user name: the key of its cursor, ledger, threads and lease."""
        return self.provider.username

    @property
    def label(self) -> str:
        """What metrics call this account: its configured name, or a short stable hash."""
        return account_label(self.provider.username, self.provider.name)

    def replies_allowed(self, recipient: str | None) -> bool:
        """Whether a thread of SMS sent to `recipient` may be answered from Slack."""
        key = recipient if recipient is not None and recipient in self.routes else DEFAULT_ROUTE
        return key in self.replies

    def channel_for(self, recipient: str | None) -> str | None:
        """The Slack channel for SMS sent to `recipient`, or None when nothing routes it."""
        if recipient is not None and recipient in self.routes:
            return self.routes[recipient]
        return self.routes.get(DEFAULT_ROUTE)


def _resolve(settings: AccountSettings, region: str, label: str) -> Account:
    """Route keys and alert senders as the provider writes numbers, whatever was typed."""
    numbers: dict[str, str] = {}
    replies: set[str] = set()
    for number, route in settings.routes.items():
        if number.strip() == DEFAULT_ROUTE:
            key = DEFAULT_ROUTE
        else:
            try:
                key = normalise_number(number, region)
            except ValueError:
                raise ValueError(
                    f"{label} routes key {number!r} is not a phone number "
                    '(e.g. "61411001001") or "*" for the default route'
                ) from None
        if isinstance(route, RouteSettings):
            numbers[key] = route.channel
            if route.replies:
                replies.add(key)
        else:
            numbers[key] = route
    rules = []
    for index, rule in enumerate(settings.alerts, start=1):
        try:
            senders = [normalise_number(sender, region) for sender in rule.senders]
        except ValueError as error:
            raise ValueError(f"{label} alerts rule {index}: {error}") from None
        rules.append(rule.model_copy(update={"senders": senders}))
    connection = ProviderSettings.model_validate(
        {name: getattr(settings, name) for name in ProviderSettings.model_fields}
    )
    return Account(connection, numbers, tuple(rules), frozenset(replies))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMSBRIDGE_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )

    # Several provider accounts (JSON list); without it, the single-account settings below.
    accounts: list[AccountSettings] = Field(default_factory=list)
    # Validated even when absent, so that a missing block reports each missing field by name.
    provider: ProviderSettings | None = Field(default=None, validate_default=True)
    slack: SlackSettings = Field(default_factory=dict, validate_default=True)
    push: PushSettings = Field(default_factory=PushSettings)
    database_url: str = "sqlite:///./smsbridge.db"
    poll_interval: float = Field(default=5.0, ge=0.5)
    initial_lookback: int = Field(default=900, ge=0)
    thread_idle_hours: float = Field(default=24.0, gt=0)
    retention_days: int = Field(default=30, ge=1)
    # Privacy. The SMS text leaves the ledger once posted (Slack has it; duplicates are told
    # apart by a hash). Full phone numbers in logs only when debugging, announced at start.
    # /metrics answers only with this bearer token, when set ($PORT is public for Slack).
    drop_posted_text: bool = True
    log_personal_data: bool = False
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    rejected_retry: float = Field(default=300.0, ge=1)  # seconds, after credentials are refused
    routes: Routes = Field(default_factory=dict, validate_default=True)
    port: int = Field(default=3000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "port"))
    default_region: str = Field(default="AU", min_length=2, max_length=2)
    history_allowed_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Who may send SMS from Slack, when set: user IDs (U...) and user groups (S...). Unset:
    # anyone in a channel whose route has replies on.
    send_allowed: Annotated[list[str], NoDecode] = Field(default_factory=list)
    history_rate_limit: int = Field(default=10, ge=1)
    note_prefix: str = Field(default="//", min_length=1)  # a thread reply so marked is never sent
    max_sms_parts: int = Field(default=3, ge=1, le=10)  # a longer reply is refused, not sent
    # SMS a person, and an account, may send from Slack per minute: an accident stays cheap.
    send_limit_per_person: int = Field(default=20, ge=1)
    send_limit_per_account: int = Field(default=120, ge=1)
    alerts: list[AlertRule] = Field(default_factory=list)

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{value!r} is not a region code; use a two-letter code such as AU or GB"
            )
        return region

    @field_validator("history_allowed_users", "send_allowed", mode="before")
    @classmethod
    def _user_list(cls, value: object) -> object:
        # Either a JSON list or the friendlier comma-separated form: U0123,U0456
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// (a file) or postgresql:// (a server)")
        return value

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: object, info: ValidationInfo) -> object:
        # One account: its block is required, so a missing one reports each field by name.
        if value is None and not info.data.get("accounts"):
            return {}
        return value

    @field_validator("routes")
    @classmethod
    def _routes(
        cls, value: dict[str, str | RouteSettings], info: ValidationInfo
    ) -> dict[str, str | RouteSettings]:
        if not value and not info.data.get("accounts"):
            raise ValueError(
                'is empty or not set; map at least the default route, e.g. {"*": "C0123ABCD"} '
                "(or list several accounts in SMSBRIDGE_ACCOUNTS)"
            )
        return value

    @model_validator(mode="after")
    def _accounts(self) -> Settings:
        if self.accounts:
            if self.provider is not None and self.provider.username:
                raise ValueError(
                    "set either SMSBRIDGE_ACCOUNTS (several accounts) or "
                    "SMSBRIDGE_PROVIDER__USERNAME (one account), not both"
                )
            resolved = [
                _resolve(a, self.default_region, f"SMSBRIDGE_ACCOUNTS account {a.username!r}")
                for a in self.accounts
            ]
            names = [account.name for account in resolved]
            if len(set(names)) != len(names):
                raise ValueError("SMSBRIDGE_ACCOUNTS lists the same username twice")
            labels = [account.label for account in resolved]
            if len(set(labels)) != len(labels):
                raise ValueError("SMSBRIDGE_ACCOUNTS gives two accounts the same name")
        else:
            assert self.provider is not None  # made required by _provider
            single = AccountSettings(**dict(self.provider), routes=self.routes, alerts=self.alerts)
            resolved = [_resolve(single, self.default_region, "SMSBRIDGE_ROUTES/ALERTS")]
        self._resolved = resolved
        return self

    _resolved: list[Account] = PrivateAttr(default_factory=list)

    @property
    def provider_accounts(self) -> list[Account]:
        """Every provider account to bridge, each with its routes and alert rules."""
        return self._resolved

    @property
    def routed_channels(self) -> list[str]:
        """Every Slack channel that receives SMS, from any account."""
        return sorted({c for account in self._resolved for c in account.routes.values()})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _SlackConventionalEnv(settings_cls),
            TomlConfigSettingsSource(settings_cls),
        )


class _SlackConventionalEnv(PydanticBaseSettingsSource):
    """Slack's own tools use SLACK_BOT_TOKEN etc.; accept them below our prefixed names."""

    NAMES: ClassVar[dict[str, str]] = {
        "SLACK_BOT_TOKEN": "bot_token",
        "SLACK_SIGNING_SECRET": "signing_secret",
        "SLACK_APP_TOKEN": "app_token",
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        slack = {key: os.environ[name] for name, key in self.NAMES.items() if os.environ.get(name)}
        return {"slack": slack} if slack else {}


_HINTS = {
    "provider.username": "your SMS provider user name, e.g. 1234321@reseller",
    "provider.password": "your SMS provider password",
    "provider.url": "the provider's base URL, e.g. https://mc5.smartmessagingservices.net",
    "slack.bot_token": (
        "the Bot User OAuth Token (xoxb-...) from the Slack app's OAuth & Permissions page"
    ),
    "slack.signing_secret": "the Signing Secret from the Slack app's Basic Information page",
    "routes": (
        "a JSON object mapping your virtual numbers to channel IDs, "
        'e.g. {"61411001001": "C0OPS", "*": "C0ALL"}'
    ),
    "poll_interval": "seconds between polls, at least 0.5",
    "alerts": ('a JSON list of rules, e.g. [{"keyword": "urgent", "mention": "<!subteam^S0123>"}]'),
    "port": "the HTTP port to listen on",
}


def env_name(loc: tuple[str | int, ...]) -> str:
    """The environment variable that sets the setting at `loc`."""
    if loc and loc[0] in ("port", "PORT"):
        return "PORT"
    if len(loc) >= 2 and loc[0] == "alerts" and isinstance(loc[1], int):
        detail = f" ({'.'.join(str(part) for part in loc[2:])})" if len(loc) > 2 else ""
        return f"SMSBRIDGE_ALERTS rule {loc[1] + 1}{detail}"
    return "SMSBRIDGE_" + "__".join(str(part).upper() for part in loc)


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem: which variable, what is wrong, what to set it to."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        dotted = ".".join(str(part) for part in loc)
        hint = _HINTS.get(dotted)
        if not loc:  # a whole-model check: its message names the variable itself
            problems.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        if item["type"] == "missing":
            line = f"{env_name(loc)} is not set" + (f": set it to {hint}" if hint else "")
        else:
            reason = str(item["msg"]).removeprefix("Value error, ")
            line = (
                f"{env_name(loc)} {reason}"
                if reason.startswith("is ")
                else f"{env_name(loc)}: {reason}"
            )
            if hint and "e.g." not in line:
                line += f" (expected {hint})"
        problems.append(line)
    return problems


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings, raising ConfigError with every problem at once."""
    cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError([f"--config {config_file}: no such file"])
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})
        cls = type("Settings", (Settings,), {"model_config": config})
    try:
        return cls(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_errors(error)) from None
    except ValueError as error:  # e.g. a TOML syntax error or a JSON variable that does not parse
        raise ConfigError([_explain_parse_error(error)]) from None


def _explain_parse_error(error: ValueError) -> str:
    text = str(error)
    match = re.search(r'error parsing value for field "(\w+)" from source "(\w+)"', text)
    if match:
        field = match.group(1)
        hint = _HINTS.get(field)
        return f"{env_name((field,))} is not valid JSON" + (f": set it to {hint}" if hint else "")
    return f"could not read the settings: {text}"
