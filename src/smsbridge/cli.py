"""The `smsbridge` command line."""

from __future__ import annotations

import asyncio
import gc
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from smsbridge.config import Settings, load_settings
from smsbridge.errors import ConfigError, StoreError

app = typer.Typer(
    help="Carries inbound SMS from your SMS gateway into Slack threads.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
sim_app = typer.Typer(help="Stand-ins for local work.", no_args_is_help=True)
contacts_app = typer.Typer(help="The contact book: names for numbers.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(contacts_app, name="contacts")
app.add_typer(sim_app, name="sim")

err = Console(stderr=True)
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A TOML file with the same settings; environment wins."),
]


def _settings(config: Path | None) -> Settings:
    """Load the settings or exit 2 with every problem listed and no traceback."""
    try:
        return load_settings(config)
    except ConfigError as error:
        err.print("[bold red]smsbridge cannot start: the configuration is incomplete or wrong[/]")
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        err.print(
            "Set these as environment variables (or in the file given with --config), then run "
            "`smsbridge check`."
        )
        raise typer.Exit(2) from None


class LogFormat(StrEnum):
    console = "console"
    json = "json"


@app.command()
def run(
    config: ConfigOption = None,
    log_format: Annotated[
        LogFormat, typer.Option(help="console: readable lines; json: one JSON object per line.")
    ] = LogFormat.console,
) -> None:
    """Poll the SMS provider and post new SMS to Slack; serve HTTP on $PORT."""
    gc.disable()  # start-up's imports make no garbage worth the collector's passes over them
    from smsbridge.logs import setup_logging
    from smsbridge.service import Service

    settings = _settings(config)
    progress = None
    if log_format is LogFormat.console and sys.stderr.isatty():
        from smsbridge.terminal import TerminalProgress

        console = Console(stderr=True)
        progress = TerminalProgress(console)
        setup_logging(console=console, personal_data=settings.log_personal_data)
    else:
        setup_logging(log_format=log_format.value, personal_data=settings.log_personal_data)
    import uvloop

    # What start-up built (modules, classes, settings) lives as long as the process: frozen, the
    # collector's full passes skip it. Unfrozen, each full pass walked all of it and paused the
    # event loop for 40-70 ms, the slowest push answers of a storm (bench/push.py).
    gc.freeze()
    gc.enable()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        raise typer.Exit(runner.run(Service(settings, progress=progress).run()))


@app.command()
def check(config: ConfigOption = None) -> None:
    """Check the configuration, provider credentials, Slack token and every routed channel."""
    from smsbridge.check import run_checks

    settings = _settings(config)
    results = asyncio.run(run_checks(settings))
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for result in results:
        table.add_row(result.name, "[green]ok[/]" if result.ok else "[red]FAILED[/]", result.detail)
    Console().print(table)
    raise typer.Exit(0 if all(result.ok for result in results) else 1)


@app.command()
def demo(
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
) -> None:
    """Run the real bridge against built-in stand-ins of the provider and Slack."""
    from smsbridge.demo import run_demo
    from smsbridge.logs import setup_logging

    setup_logging("WARNING")
    raise typer.Exit(asyncio.run(run_demo(seconds, Console())))


@app.command()
def history(
    words: Annotated[
        list[str],
        typer.Argument(
            help="As after `/sms history`: <since> [from <number>] [to <line>] [limit <n>]"
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Show SMS received since a time, read live from the provider, as `/sms history` does.

    Examples: smsbridge history 2h · smsbridge history today from 0409 560 857 limit 50
    """
    from smsbridge.terminal import print_history

    settings = _settings(config)
    raise typer.Exit(asyncio.run(print_history(settings, " ".join(words), Console())))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema (the Procfile's release step)."""
    from smsbridge.store.store import Store

    settings = _settings(config)

    async def upgrade() -> tuple[int, int]:
        store = Store.open(settings.database_url)
        try:
            return await store.upgrade()
        finally:
            await store.close()

    try:
        before, after = asyncio.run(upgrade())
    except StoreError as error:
        err.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    print(
        f"database schema: version {before} -> {after}"
        if before != after
        else f"database schema is up to date (version {after})"
    )


@app.command()
def replay(
    failed: Annotated[
        bool, typer.Option("--failed", help="SMS that Slack refused (e.g. archived channel).")
    ] = False,
    unrouted: Annotated[
        bool,
        typer.Option("--unrouted", help="SMS without a route that the current routes now cover."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Queue SMS to be posted again, once their channel (or route) is fixed.

    The running bridge posts them within one poll interval.
    """
    from smsbridge.store.store import Store

    if not (failed or unrouted):
        err.print(
            "smsbridge replay: say what to replay: --failed, --unrouted or both", markup=False
        )
        raise typer.Exit(2)
    settings = _settings(config)

    async def queue() -> tuple[int, int]:
        store = Store.open(settings.database_url)
        queued = left = 0
        try:
            await store.upgrade()
            for account in settings.provider_accounts:
                done, remaining = await store.ledger.replay(
                    account.name, failed=failed, unrouted=unrouted, channel_for=account.channel_for
                )
                queued, left = queued + done, left + remaining
        finally:
            await store.close()
        return queued, left

    try:
        queued, left = asyncio.run(queue())
    except StoreError as error:
        err.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    print(f"{queued} SMS queued; the running bridge posts them within one poll interval.")
    if left:
        print(f'{left} SMS still match no route: add their numbers (or "*") to SMSBRIDGE_ROUTES.')


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="A CSV file (header number,name[,note]) or vCard.")],
    account: Annotated[
        str | None,
        typer.Option(help="The account's username or name (needed with several accounts)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add or update contacts from a file; run it again after editing the file.

    Reports what it added, changed and could not read (with line numbers); exits 1 when some
    lines could not be read, 2 when the file could not be read at all.
    """
    from smsbridge.people import import_contacts

    settings = _settings(config)
    code, lines = asyncio.run(import_contacts(settings, file, account))
    _print_lines(code, lines)


@app.command()
def forget(
    number: Annotated[str, typer.Argument(help="The person's number, as people write it.")],
    opt_out_too: Annotated[
        bool, typer.Option(help="Remove their opt-out (STOP) as well: SMS may reach them again.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Erase a person's data from the database (an erasure request). Not from Slack."""
    from smsbridge.people import forget as forget_number

    settings = _settings(config)
    code, lines = asyncio.run(forget_number(settings, number, opt_out_too))
    _print_lines(code, lines)


def _print_lines(code: int, lines: list[str]) -> None:
    for line in lines:  # plain lines, unwrapped: operators script against them
        print(line, file=sys.stderr if code == 2 else sys.stdout)
    raise typer.Exit(code)


@sim_app.command("provider")
def sim_provider(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    exclusive: Annotated[
        bool, typer.Option(help="Read `since` as exclusive (>) instead of inclusive (>=).")
    ] = False,
    capacity: Annotated[
        int, typer.Option(min=1, help="Messages the inbox keeps (the oldest go first).")
    ] = 10_000,
) -> None:
    """Serve the SMS provider stand-in (user demo@reseller, password 'demo password & more').

    Add messages with: curl -d '{"from": "61409560857", "text": "hi"}' localhost:8081/_sim/messages
    """
    import uvicorn

    from smsbridge.sim.provider import ProviderSim

    provider = ProviderSim(inclusive=not exclusive, capacity=capacity)
    reading = "exclusive" if exclusive else "inclusive"
    print(f"SMS provider stand-in on http://127.0.0.1:{port} (since is {reading})")
    uvicorn.run(provider.app(), host="127.0.0.1", port=port, log_level="warning")


@sim_app.command("slack")
def sim_slack(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8082,
    post_interval: Annotated[
        float, typer.Option(help="Seconds per post to one channel (0: no limit).")
    ] = 0.0,
    post_burst: Annotated[int, typer.Option(help="Posts one channel takes at once.")] = 1,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's key (PEM).")] = None,
) -> None:
    """Serve the Slack Web API stand-in (bot token xoxb-sim-token).

    Add channels with: curl -d '[{"id": "C0OPS", "name": "ops"}]' localhost:8082/_sim/channels
    """
    import uvicorn

    from smsbridge.sim.slack import SlackSim

    if (tls_cert is None) != (tls_key is None):
        err.print("smsbridge sim slack: give both --tls-cert and --tls-key, or neither")
        raise typer.Exit(2)
    slack = SlackSim(post_interval=post_interval, post_burst=post_burst)
    scheme = "https" if tls_cert else "http"
    print(f"Slack stand-in on {scheme}://{host}:{port}/api/ (token {slack.token})")
    uvicorn.run(
        slack.app(),
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
