"""`smsbridge demo`: the real service against the built-in stand-ins, with a live Slack view.

No accounts needed: a provider stand-in receives a scripted stream of SMS (replies to several
outbound messages, a few senders, an emoji, an attempt to ping @channel). The gateway pushes
most of them to the bridge; every third push is "lost upstream", and polling finds that one.
The bridge posts to a Slack stand-in, and the terminal shows the channels and threads as Slack
would, and the bridge's log of how each SMS arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from smsbridge.config import Settings
from smsbridge.contacts_file import ContactEntry
from smsbridge.service import Service
from smsbridge.sim.provider import ProviderSim
from smsbridge.sim.serve import serve
from smsbridge.sim.slack import BOT_USER, SlackSim
from smsbridge.store.store import Store

OPS_LINE, SUPPORT_LINE = "61411001001", "61400000002"
# Field ops may answer by SMS from Slack; the support inbox only reads.
ROUTES: dict[str, Any] = {OPS_LINE: {"channel": "C0OPS", "replies": True}, "*": "C0INBOX"}
SECRET = "demo-secret"
PUSH_TOKEN = "demo-push-token-" + "x" * 24  # the secret in the push URL (32+ characters)
TEAM_REPLY = "Thanks! Sam will ring the bell at 11 :thumbsup:"

# Outbound messages that the team sent earlier; customers' answers quote their ids.
OUTBOUND = {
    "reminder": "Reminder: your appointment is tomorrow 9:30. Reply YES to confirm.",
    "on_the_way": "Your technician Sam is on the way.",
    "survey": "How did we do? Reply 1-5.",
}

SCRIPT: list[tuple[str, str, str | None, str]] = [
    ("61409560857", OPS_LINE, "reminder", "YES see you then 👍"),
    ("61412345678", OPS_LINE, "on_the_way", "Gate code is 4521, the dog is friendly"),
    ("61409560857", OPS_LINE, "reminder", "Actually, could we make it 10:00?"),
    ("447700900123", SUPPORT_LINE, None, "Hi, is this the right number for support?"),
    ("61412345678", OPS_LINE, "on_the_way", "Running late? I leave at 11"),
    (
        "61498765432",
        SUPPORT_LINE,
        None,
        "<!channel> URGENT verify your account at <https://evil.example|Bank of Australia>",
    ),
    ("447700900123", SUPPORT_LINE, None, "Hello? 😊"),
    ("61409560857", OPS_LINE, "survey", "5 - great service & friendly staff"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def feed(
    provider: ProviderSim, origins: dict[str, str], port: int, stop: asyncio.Event
) -> None:
    """Send the script, then a trickle of further replies, as customers would. The gateway
    pushes each SMS to the bridge, except every third, whose push is lost upstream."""
    extra = ["Thanks!", "ok", "Can you call me back?", "Is parking available?", "👍👍"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as bridge:
        for count in range(10_000):
            if count < len(SCRIPT):
                sender, line, origin, text = SCRIPT[count]
            else:
                sender, line, origin, _ = random.choice(SCRIPT[:5])
                text = random.choice(extra)
            sms = provider.add(
                sender, text, recipient=line, origin=origins[origin] if origin else None
            )
            if count % 3 != 2:
                push = {"MOMessageId": sms.document_id, "MTMessageId": sms.origin}
                push |= {"timestamp": str(sms.timestamp), "from": sender, "to": line}
                with contextlib.suppress(httpx.HTTPError):  # polling brings it anyway
                    await bridge.get(
                        f"/provider/push/{PUSH_TOKEN}",
                        params={k: v for k, v in push.items() if v} | {"text": text},
                    )
            pause = random.uniform(0.6, 1.5) if count < len(SCRIPT) else random.uniform(2, 5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            if stop.is_set():
                return


class PathLog(logging.Handler):
    """The bridge's log lines that say how an SMS arrived (by push or by polling)."""

    def __init__(self, keep: int = 8) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str, str]] = []
        self._keep = keep

    def emit(self, record: logging.LogRecord) -> None:
        path = getattr(record, "path", None)
        if path in ("push", "poll"):
            stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
            self.lines = [*self.lines, (stamp, path, record.getMessage())][-self._keep :]

    def view(self) -> Panel:
        body = Text()
        for stamp, path, message in self.lines:
            body.append(f"{stamp} ", style="dim")
            body.append(f"{path:<4} ", style="bold green" if path == "push" else "bold yellow")
            body.append(message + "\n")
        body.rstrip()
        return Panel(
            body or Text("(nothing yet)", style="dim"),
            title="bridge log: how each SMS arrived",
            title_align="left",
        )


async def converse(provider: ProviderSim, slack: SlackSim, port: int, stop: asyncio.Event) -> None:
    """A team member answers the gate-code SMS in its thread, as Slack would tell the bridge
    (a signed event); the SMS goes out, and the customer's answer comes back to the thread."""
    try:
        async with asyncio.timeout(60):
            await slack.wait_for_sms(2)
            parent = next(m for m in slack.top_level("C0OPS") if "Gate code" in m["text"])
            await asyncio.sleep(1.0)  # a person takes a moment to type
            ts = slack.say("C0OPS", "U0SAM", TEAM_REPLY, thread_ts=parent["ts"])
            message = {"channel": "C0OPS", "user": "U0SAM", "text": TEAM_REPLY, "ts": ts}
            await slack.deliver(
                f"http://127.0.0.1:{port}", SECRET, {**message, "thread_ts": parent["ts"]}
            )
            await provider.wait_for_sent(1)
            await asyncio.sleep(1.5)
            if not stop.is_set():
                provider.reply_to(provider.sent[0], "Perfect, see you then!")
    except (TimeoutError, httpx.HTTPError, StopIteration):
        return  # the demo goes on without this part


_DATE = re.compile(r"<!date\^(\d+)\^[^|>]*\|[^>]*>")
_MENTION = re.compile(r"<!(here|channel)>|<!subteam\^(\w+)>|<@(\w+)>")


def as_seen_in_slack(mrkdwn: str) -> str:
    """Roughly what a Slack user sees for our mrkdwn: dates in local time, live mentions as
    @names, and escaped SMS text as the plain characters it stands for."""
    text = _DATE.sub(lambda m: datetime.fromtimestamp(int(m.group(1))).strftime("%H:%M:%S"), mrkdwn)
    text = _MENTION.sub(lambda m: "🔔 @" + (m.group(1) or m.group(2) or m.group(3)), text)
    text = text.replace("*", "").replace(":speech_balloon: ", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _message_lines(message: dict[str, Any], indent: str) -> Text:
    out = Text()
    if message.get("user") and message.get("user") != BOT_USER:  # a person wrote it
        reactions = " ".join(
            {"white_check_mark": "✅", "x": "❌"}.get(name, name)
            for name in message.get("reactions", [])
        )
        out.append(f"{indent}{message['user']} (Slack): ", style="bold magenta")
        out.append(f"{as_seen_in_slack(message.get('text', ''))} {reactions}\n")
        return out
    for block in message.get("blocks", []):
        if block["type"] == "context":
            out.append(
                indent + as_seen_in_slack(block["elements"][0]["text"]) + "\n", style="bold cyan"
            )
        elif block["type"] == "section":
            out.append(indent + as_seen_in_slack(block["text"]["text"]) + "\n")
    return out


def slack_view(slack: SlackSim, paths: PathLog) -> Group:
    panels: list[Panel] = []
    for channel in slack.channels.values():
        body = Text()
        for parent in slack.top_level(channel.id):
            body.append_text(_message_lines(parent, ""))
            for reply in slack.replies(channel.id, parent["ts"]):
                body.append_text(_message_lines(reply, "    ↳ "))
            body.append("\n")
        body.rstrip()
        panels.append(
            Panel(
                body or Text("(no messages yet)", style="dim"),
                title=f"#{channel.name}",
                title_align="left",
            )
        )
    return Group(*panels, paths.view())


def _show_paths(paths: PathLog) -> None:
    """The bridge's INFO lines about arrival paths go to the panel; the terminal's own log
    handlers keep showing warnings only."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    root.addHandler(paths)
    for name in ("smsbridge.bridge", "smsbridge.pipeline.poller"):
        logging.getLogger(name).setLevel(logging.INFO)


async def _known_people(settings: Settings) -> None:
    """One customer in the contact book, so the demo shows a name beside a number."""
    store = Store.open(settings.database_url)
    try:
        await store.upgrade()
        entry = ContactEntry("61409560857", "Jane Doe", "books the 10:00 slot")
        await store.contacts.save_many(settings.provider_accounts[0].name, [entry])
    finally:
        await store.close()


async def run_demo(seconds: float | None, console: Console) -> int:
    provider = ProviderSim()
    slack = SlackSim()
    slack.add_channel("C0OPS", "field-ops")
    slack.add_channel("C0INBOX", "sms-inbox")
    origins = {key: provider.new_id() for key in OUTBOUND}
    stop_feed = asyncio.Event()
    async with serve(provider.app()) as provider_url, serve(slack.app()) as slack_url:
        with tempfile.TemporaryDirectory(prefix="smsbridge-demo-") as tmp:
            settings = Settings(
                provider={
                    "url": provider_url,
                    "username": "demo@reseller",
                    "password": "demo password & more",
                },
                slack={
                    "bot_token": slack.token,
                    "signing_secret": SECRET,
                    "api_url": f"{slack_url}/api/",
                    "post_interval": 0.3,
                },
                database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
                poll_interval=1.0,
                # a short reconciliation, so the demo shows polling find a lost push quickly
                push={"token": PUSH_TOKEN, "reconcile_interval": 3},
                routes=ROUTES,
                alerts=[{"keyword": "urgent", "mention": "<!here>"}],
                port=_free_port(),
            )
            await _known_people(settings)
            paths = PathLog()
            _show_paths(paths)
            service = Service(settings, host="127.0.0.1")
            running = asyncio.create_task(service.run())
            feeder = asyncio.create_task(feed(provider, origins, settings.port, stop_feed))
            conversation = asyncio.create_task(converse(provider, slack, settings.port, stop_feed))
            console.print(
                f"[bold]smsbridge demo[/]: provider stand-in at {provider_url}, Slack stand-in at "
                f"{slack_url}. Press Ctrl-C to stop.\n"
            )
            loop = asyncio.get_running_loop()
            deadline = None if seconds is None else loop.time() + seconds
            with Live(
                slack_view(slack, paths), console=console, refresh_per_second=4, transient=False
            ) as live:
                while not running.done() and (deadline is None or loop.time() < deadline):
                    live.update(slack_view(slack, paths))
                    await asyncio.sleep(0.25)
                live.update(slack_view(slack, paths))
            console.print()
            stop_feed.set()
            service.stop.set()
            await feeder
            conversation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conversation
            code = await running
            logging.getLogger().removeHandler(paths)
    if service.fatal is not None:
        console.print(f"[red]{service.fatal}[/]")
    return code
