"""SQLAlchemy Core tables and the ordered list of schema upgrades.

Upgrades are an ordered list (as in mautrix-python): step N brings the schema from version N-1 to
N in one transaction. A database whose version is newer than the code is refused, so an old
release never writes to a schema it does not understand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

# The `since` to send next, per provider account.
cursors = Table(
    "cursors",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("since", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_poll_at", Float),  # v2: the last successful poll by any replica
)

# The delivery ledger, one row per inbound SMS, written before the cursor moves past it.
# state: pending -> posting (claimed, a post may be in flight) -> posted | failed;
#        unrouted when no route matches its recipient.
ledger = Table(
    "ledger",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # arrival order
    Column("account", String(200), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("channel", String(32)),
    Column("sender", String(32), nullable=False),
    Column("recipient", String(32)),
    Column("origin_document_id", String(64)),
    Column("sms_timestamp", BigInteger, nullable=False),
    Column("text", Text, nullable=False),  # "" once posted, unless SMSBRIDGE_DROP_POSTED_TEXT=false
    Column("slack_ts", String(32)),
    Column("thread_ts", String(32)),
    Column("reason", Text),
    Column("received_at", Float, nullable=False),
    Column("claimed_at", Float),
    Column("claimed_by", String(120)),  # v2: the replica that claimed the post
    Column("via", String(8)),  # v3: "push" or "poll": how the SMS reached us
    Column("done_at", Float),
    Column("text_hash", String(64)),  # v5: SHA-256 of the text, which matching uses instead
    UniqueConstraint("account", "document_id", name="ledger_account_document"),
)
Index("ledger_backlog", ledger.c.account, ledger.c.state, ledger.c.channel, ledger.c.seq)

# Slack thread of each (channel, sender, origin) conversation.
threads = Table(
    "threads",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("sender", String(32), primary_key=True),
    Column("origin", String(64), primary_key=True),  # "" for SMS that answer nothing known
    Column("thread_ts", String(32), nullable=False),
    Column("last_sms_timestamp", BigInteger, nullable=False),
)

# v2: which replica polls each provider account, until when (epoch seconds, database clock).
leases = Table(
    "leases",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("holder", String(120), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# v3: SMS people send from Slack, one row per Slack message (channel, ts): a second delivery of
# the same event finds its row and sends nothing. state: queued -> sending (claimed: the
# provider may have it) -> sent | refused (never sent: opted out, too long, out of credit, ...)
# | failed (the provider refused it).
outbound = Table(
    "outbound",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("account", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("slack_ts", String(32), nullable=False),  # the person's message
    Column("thread_ts", String(32)),  # the thread it answers, or its own ts when it starts one
    Column("user", String(32), nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("line", String(32)),  # the number it goes out from; None: the provider's pool
    Column("text", Text, nullable=False),  # as the phone will show it
    Column("state", String(16), nullable=False),
    Column("provider_id", String(64)),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
    Column("claimed_at", Float),
    Column("claimed_by", String(120)),
    Column("done_at", Float),
    # Delivery, for accounts with the status query: the provider's final status, or the
    # next time to ask (None when nobody asks: no status query, or a final status is known).
    Column("delivery_status", Integer),
    Column("status_due", Float),
    UniqueConstraint("channel", "slack_ts", name="outbound_slack_message"),
)
Index("outbound_queue", outbound.c.account, outbound.c.state, outbound.c.seq)

# v3: numbers that opted out of SMS from one of our lines (STOP), until they opt back in.
optouts = Table(
    "optouts",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("line", String(32), primary_key=True),  # "" when the SMS named no line
    Column("number", String(32), primary_key=True),
    Column("opted_out_at", Float, nullable=False),
)

# v4: the catch-up notice last posted per channel, by the newest ledger row it announced: a
# restart in the middle of a catch-up finds its rows covered and does not announce them again.
catch_ups = Table(
    "catch_ups",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("through_seq", Integer, nullable=False),
    Column("announced_at", Float, nullable=False),
)

# v5: the contact book, per account: numbers people know by name.
contacts = Table(
    "contacts",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("number", String(32), primary_key=True),  # as the provider writes it: 61409560857
    Column("name", String(100), nullable=False),
    Column("note", String(200), nullable=False),  # "" when none
    Column("updated_at", Float, nullable=False),
)

# Tables as version 1 created them; later columns arrive through their own upgrade step.
_V2_COLUMNS = {("cursors", "last_poll_at"), ("ledger", "claimed_by")}
_LATER_COLUMNS = _V2_COLUMNS | {
    ("ledger", "via"),
    ("ledger", "text_hash"),
}  # not in the tables version 1 created


async def _v1(conn: AsyncConnection) -> None:
    def create(sync: Connection) -> None:
        for table in (cursors, ledger, threads):
            columns = [
                c._copy() for c in table.columns if (table.name, c.name) not in _LATER_COLUMNS
            ]
            uniques = [
                UniqueConstraint(*(col.name for col in constraint.columns), name=constraint.name)
                for constraint in list(table.constraints)
                if isinstance(constraint, UniqueConstraint)
            ]
            v1 = Table(table.name, MetaData(), *columns, *uniques)
            for index in list(table.indexes):
                Index(index.name, *(v1.c[col.name] for col in index.columns))
            v1.create(sync)

    await conn.run_sync(create)


async def _v2(conn: AsyncConnection) -> None:
    await conn.execute(text("ALTER TABLE cursors ADD COLUMN last_poll_at FLOAT"))
    await conn.execute(text("ALTER TABLE ledger ADD COLUMN claimed_by VARCHAR(120)"))
    await conn.run_sync(lambda sync: leases.create(sync))


async def _v3(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: outbound.create(sync))
    await conn.run_sync(lambda sync: optouts.create(sync))
    # a thread reply looks up whom its thread talks to
    await conn.execute(text("CREATE INDEX ledger_thread ON ledger (channel, thread_ts)"))
    await conn.execute(text("ALTER TABLE ledger ADD COLUMN via VARCHAR(8)"))


async def _v4(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: catch_ups.create(sync))
    # with pushes on, every new SMS looks for its twin come the other way under another id
    await conn.execute(text("CREATE INDEX ledger_twin ON ledger (account, sender, sms_timestamp)"))


async def _v5(conn: AsyncConnection) -> None:
    await conn.execute(text("ALTER TABLE ledger ADD COLUMN text_hash VARCHAR(64)"))
    await conn.run_sync(lambda sync: contacts.create(sync))
    # retention and erasure find a person's rows by number
    await conn.execute(text("CREATE INDEX ledger_sender ON ledger (sender)"))
    await conn.execute(text("CREATE INDEX outbound_recipient ON outbound (recipient)"))


UPGRADES: list[Callable[[AsyncConnection], Awaitable[None]]] = [_v1, _v2, _v3, _v4, _v5]
LATEST = len(UPGRADES)
