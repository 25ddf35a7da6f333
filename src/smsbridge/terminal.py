"""The terminal side: `smsbridge history` as a table, and catch-up progress bars for `run`."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from smsbridge.config import Account, Settings
from smsbridge.errors import ProviderError
from smsbridge.models import InboundSms
from smsbridge.provider.client import ProviderClient
from smsbridge.slack.render import format_number
from smsbridge.slash.arguments import (
    MAX_LIMIT,
    HelpArgs,
    HistoryArgs,
    parse_command,
    resolve_since,
)
from smsbridge.slash.history import query_history
from smsbridge.store.store import Store


async def print_history(settings: Settings, words: str, console: Console) -> int:
    """Print the table; returns the exit code (2 for a bad argument, 1 for a provider error)."""
    parsed = parse_command(f"history {words}", settings.default_region)
    if not isinstance(parsed, HistoryArgs):
        problem = parsed.problem if isinstance(parsed, HelpArgs) else None
        console.print(f"smsbridge history: {problem or 'see --help'}", markup=False)
        return 2
    local = datetime.now().astimezone()
    try:
        since = resolve_since(parsed.since, local.astimezone(UTC), local.tzinfo or UTC)
    except ValueError as error:
        console.print(f"smsbridge history: {error}", markup=False)
        return 2

    def keep(_: Account, sms: InboundSms) -> bool:
        return (parsed.sender is None or sms.sender == parsed.sender) and (
            parsed.line is None or sms.recipient == parsed.line
        )

    sources = [
        (
            account,
            ProviderClient.for_account(account.provider),
        )
        for account in settings.provider_accounts
    ]
    store = Store.open(settings.database_url)
    try:
        await store.upgrade()
        result = await query_history(sources, store, since=since, keep=keep, limit=parsed.limit)
    except ProviderError as error:
        console.print(f"smsbridge history: {error}", markup=False)
        return 1
    finally:
        for _, client in sources:
            await client.aclose()
        await store.close()
    started = datetime.fromtimestamp(since).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    table = Table(title=f"{result.matched} SMS since {started}, newest first", title_justify="left")
    for column in ("time", "from", "to", "text", "bridged to"):
        table.add_column(column, overflow="fold")
    for item in (item for _, items in result.by_sender() for item in items):
        sms = item.sms
        when = datetime.fromtimestamp(sms.timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        where = f"{item.post.channel} {item.post.ts}" if item.post else ""
        # Text() cells: an SMS saying [bold]...[/] is shown as typed, not as terminal markup.
        table.add_row(
            Text(when),
            Text(
                f"{item.name} ({format_number(sms.sender)})"
                if item.name
                else format_number(sms.sender)
            ),
            Text(format_number(sms.recipient) if sms.recipient else ""),
            Text(sms.text),
            Text(where),
        )
    console.print(table)
    if result.matched > len(result.items):
        console.print(
            f"Showing {len(result.items)} of {result.matched}; narrow it with from/to, a later "
            f"time, or raise limit (up to {MAX_LIMIT}).",
            markup=False,
        )
    return 0


class TerminalProgress:
    """Progress bars for catch-ups, one per channel, while `run` is on a terminal.

    Log lines go through the same console (see setup_logging), so they print above the bars.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("catching up {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            auto_refresh=False,  # drawn from the event loop when something changes, no thread
        )
        self._tasks: dict[str, tuple[TaskID, int]] = {}  # channel -> (task, total)

    def start(self, channel: str, total: int) -> None:
        if not self._tasks:
            self._progress.start()
        self._tasks[channel] = (self._progress.add_task(channel, total=total), total)
        self._progress.refresh()

    def advance(self, channel: str, done: int) -> None:
        if channel not in self._tasks:
            return
        task, total = self._tasks[channel]
        self._progress.update(task, completed=done)
        if done == total or (100 * done // total) != (100 * (done - 1) // total):
            self._progress.refresh()  # at most once per percent

    def finish(self, channel: str) -> None:
        if channel not in self._tasks:
            return
        task, _ = self._tasks.pop(channel)
        self._progress.refresh()
        self._progress.remove_task(task)
        if not self._tasks:
            self._progress.stop()
