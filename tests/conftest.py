"""Shared fixtures: the stand-ins served over real HTTP, settings pointing at them, a bridge."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from smsbridge.bridge import Bridge, Lane
from smsbridge.config import ProviderSettings, Settings, SlackSettings
from smsbridge.pipeline.delivery import CatchUpProgress
from smsbridge.service import Service
from smsbridge.sim.provider import ProviderSim
from smsbridge.sim.serve import serve
from smsbridge.sim.slack import SlackSim
from smsbridge.stopping import StopSignal

# Locally hypothesis explores new examples every run; in CI it replays a fixed sequence, so a
# landing is never decided by the luck of the draw (failures found locally become tests).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

USERNAME = "demo@reseller"
PASSWORD = "demo password & more"  # spaces and & on purpose: it must survive form encoding
OPS, INBOX = "C0OPS", "C0INBOX"
OPS_LINE, OTHER_LINE = "61411001001", "61400000002"


@dataclass
class Served:
    provider: ProviderSim
    provider_url: str
    slack: SlackSim
    slack_url: str


@pytest.fixture
def provider_sim() -> ProviderSim:
    return ProviderSim()


@pytest.fixture
def slack_sim() -> SlackSim:
    sim = SlackSim()
    sim.add_channel(OPS, "field-ops")
    sim.add_channel(INBOX, "sms-inbox")
    return sim


@pytest.fixture
async def served(provider_sim: ProviderSim, slack_sim: SlackSim) -> AsyncIterator[Served]:
    async with serve(provider_sim.app()) as provider_url, serve(slack_sim.app()) as slack_url:
        yield Served(provider_sim, provider_url, slack_sim, slack_url)


@pytest.fixture
def make_settings(served: Served, tmp_path: Path) -> Any:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "provider": ProviderSettings(
                url=served.provider_url, username=USERNAME, password=SecretStr(PASSWORD)
            ),
            "slack": SlackSettings(
                bot_token=SecretStr(served.slack.token),
                signing_secret=SecretStr("test-signing-secret"),
                api_url=f"{served.slack_url}/api/",
                post_interval=0,  # tests pace nothing unless they say so
            ),
            "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
            "poll_interval": 0.5,
            "initial_lookback": 2 * 86_400,
            "routes": {OPS_LINE: OPS, "*": INBOX},
        }
        values.update(overrides)
        return Settings(**values)

    return build


class MakeSettings(Protocol):
    def __call__(self, **overrides: Any) -> Settings: ...


class MakeHarness(Protocol):
    async def __call__(
        self,
        progress: CatchUpProgress | None = None,
        clock: Callable[[], float] = ...,
        **overrides: Any,
    ) -> Harness: ...


class FakeClock:
    """A clock that moves only when told: backoffs and retry periods without waiting."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """A bridge in this event loop, driven one poll cycle at a time."""

    def __init__(
        self,
        settings: Settings,
        progress: CatchUpProgress | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stop = StopSignal()
        self.fatal: list[Exception] = []
        self.bridge = Bridge.build(settings, self.stop, self.fatal.append, progress, clock)

    @property
    def lane(self) -> Lane:
        """The first (in most tests, the only) provider account's lane."""
        return self.bridge.lanes[0]

    @property
    def account(self) -> str:
        return self.lane.account.name

    async def cycle(self) -> None:
        """One scheduled poll per account, then wait until every channel worker has finished."""
        for lane in self.bridge.lanes:
            await lane.keeper.renew()  # as the keeper task does between polls
            await lane.poller.run_job()
        for lane in self.bridge.lanes:
            await lane.delivery.idle()

    async def close(self) -> None:
        self.stop.set()
        for lane in self.bridge.lanes:
            await lane.delivery.drain()
            await lane.keeper.release()
        await self.bridge.aclose()


@pytest.fixture
async def make_harness(make_settings: Any) -> AsyncIterator[Any]:
    harnesses: list[Harness] = []

    async def build(
        progress: CatchUpProgress | None = None,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Harness:
        harness = Harness(make_settings(**overrides), progress, clock)
        await harness.bridge.start()
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        await harness.close()


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    """`smsbridge run` in this event loop, once its HTTP port answers; stopped cleanly after."""
    service = Service(settings, host="127.0.0.1", handle_signals=False)
    task = asyncio.create_task(service.run())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=10) as http:
        while True:  # until the HTTP server answers
            assert not task.done(), f"service stopped: {service.fatal}"
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
        yield service, http
    service.stop.set()
    assert await task == 0


def use_accounts_env(monkeypatch: pytest.MonkeyPatch, accounts_json: str) -> None:
    """Environment for the several-accounts form: SMSBRIDGE_ACCOUNTS, no single account."""
    for name in (
        "SMSBRIDGE_PROVIDER__USERNAME",
        "SMSBRIDGE_PROVIDER__PASSWORD",
        "SMSBRIDGE_ROUTES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMSBRIDGE_SLACK__BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SMSBRIDGE_SLACK__SIGNING_SECRET", "s")
    monkeypatch.setenv("SMSBRIDGE_ACCOUNTS", accounts_json)


def postgres_url() -> str | None:
    """The PostgreSQL server for tests; its absence skips them, or fails them in CI."""
    url = os.environ.get("SMSBRIDGE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("SMSBRIDGE_TEST_REQUIRE_POSTGRES"):
            pytest.fail(
                "SMSBRIDGE_TEST_REQUIRE_POSTGRES is set but SMSBRIDGE_TEST_POSTGRES_URL is not"
            )
        pytest.skip(
            "no PostgreSQL: set SMSBRIDGE_TEST_POSTGRES_URL=postgresql://user@host/db to run"
        )
    return url


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    url = postgres_url()
    assert url is not None
    name = f"smsbridge_test_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(url, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as error:
        message = f"PostgreSQL at {url} is unreachable: {error}"
        if os.environ.get("SMSBRIDGE_TEST_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
