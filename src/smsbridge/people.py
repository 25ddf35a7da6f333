"""The commands about people: `smsbridge contacts import FILE` and `smsbridge forget NUMBER`.

Each returns (exit code, lines to print), so the command line only prints; 2 is an operator's
mistake (a file that cannot be read, an account that does not exist, a number that is none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from smsbridge.config import Account, Settings
from smsbridge.contacts_file import MAX_FILE_BYTES, ContactsFileError, read_contacts
from smsbridge.errors import StoreError
from smsbridge.numbers import normalise_number
from smsbridge.slack.render import format_number
from smsbridge.store.store import Store

EXIT_OK, EXIT_PARTLY, EXIT_USAGE = 0, 1, 2
UNREADABLE_SHOWN = 50  # lines of "could not read" a terminal can take
T = TypeVar("T")


def pick_account(settings: Settings, wanted: str | None) -> Account | str:
    """The account a command acts on: the only one, or the one named (user name or name)."""
    accounts = settings.provider_accounts
    if wanted is None:
        if len(accounts) == 1:
            return accounts[0]
        names = ", ".join(account.provider.name or account.name for account in accounts)
        return f"there are several accounts ({names}): say which with --account"
    for account in accounts:
        if wanted in (account.name, account.provider.name):
            return account
    return f"no account is named {wanted!r}; give its username or its name"


async def import_contacts(
    settings: Settings, path: Path, wanted: str | None
) -> tuple[int, list[str]]:
    account = pick_account(settings, wanted)
    if isinstance(account, str):
        return EXIT_USAGE, [f"smsbridge contacts import: {account}"]
    try:
        data = await asyncio.to_thread(_read_bounded, path)
        book = read_contacts(data, settings.default_region)
    except OSError as error:
        return EXIT_USAGE, [f"cannot read {path}: {error.strerror or error}"]
    except ContactsFileError as error:
        return EXIT_USAGE, [f"cannot read {path}: {error}"]
    try:
        saved = await _in_store(
            settings, lambda s: s.contacts.save_many(account.name, book.entries)
        )
    except StoreError as error:
        return EXIT_USAGE, [str(error)]
    lines = [
        f"{path}: {saved.added} added, {saved.changed} changed, {saved.unchanged} unchanged, "
        f"{len(book.unreadable)} could not be read"
    ]
    for problem in book.unreadable[:UNREADABLE_SHOWN]:
        lines.append(f"  line {problem.line}: {problem.reason}")
    if len(book.unreadable) > UNREADABLE_SHOWN:
        lines.append(f"  … and {len(book.unreadable) - UNREADABLE_SHOWN} more")
    return (EXIT_PARTLY if book.unreadable else EXIT_OK), lines


async def forget(settings: Settings, typed: str, opt_out_too: bool) -> tuple[int, list[str]]:
    try:
        number = normalise_number(typed, settings.default_region)
    except ValueError as error:
        return EXIT_USAGE, [f"smsbridge forget: {error}"]
    try:
        gone = await _in_store(
            settings, lambda s: s.erasure.forget(number, opt_out_too=opt_out_too)
        )
    except StoreError as error:
        return EXIT_USAGE, [str(error)]
    lines = [
        f"Forgot {format_number(number)} in the database: {gone.received} SMS received, "
        f"{gone.sent} SMS sent from Slack, {gone.threads} thread(s), {gone.contacts} contact(s)"
        + (f", {gone.opt_outs_removed} opt-out(s)" if opt_out_too else "")
        + "."
    ]
    if gone.opt_outs_kept:
        lines.append(
            f"Kept: {gone.opt_outs_kept} opt-out(s), so that no SMS goes to this number again "
            "(add --opt-out-too to remove them as well)."
        )
    lines.append(
        "Not removed: the messages already posted in Slack (delete them there: a workspace "
        "admin can, and Slack's retention settings apply) and the SMS gateway's own history."
    )
    return EXIT_OK, lines


async def _in_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """`work` on the database, its schema brought up to date first (as `run` would)."""
    store = Store.open(settings.database_url)
    try:
        await store.upgrade()
        return await work(store)
    finally:
        await store.close()


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, reading at most one byte past the limit (which read_contacts refuses)."""
    with path.open("rb") as file:
        return file.read(MAX_FILE_BYTES + 1)
