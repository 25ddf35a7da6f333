"""The naive reference: the SMS-to-Slack loop anyone would write in an afternoon.

    python bench/naive.py PROVIDER_URL SLACK_API_URL DATABASE ROUTES_JSON SINCE

Standard library only. Fetch a page of messages, post each new SMS to Slack (urllib: a new
connection per request), remember its id in SQLite (one commit per SMS), move `since` to the
page's newest timestamp; stop when a page brings nothing new. It has none of the bridge's
guarantees (a crash between post and commit posts twice; no threads, pacing, retries or
escaping): it is the speed a benchmark's ratios are measured against, so that they hold on any
machine. Prints how many SMS it posted.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import urllib.parse
import urllib.request
from typing import Any

USERNAME, PASSWORD = "demo@reseller", "demo password & more"
TOKEN = "xoxb-sim-token"


def fetch(provider_url: str, since: int) -> dict[str, Any]:
    form = urllib.parse.urlencode({"username": USERNAME, "password": PASSWORD, "since": since})
    request = urllib.request.Request(
        f"{provider_url}/services/rest/user/messages", data=form.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        page: dict[str, Any] = json.load(answer)
    if page.get("status") != 0:
        raise SystemExit(f"the gateway answered status {page.get('status')}")
    return page


def post(slack_api_url: str, channel: str, text: str, ident: str) -> None:
    # The Slack stand-in counts an SMS post by the id in its metadata, as the bridge's carry it.
    metadata = {"event_type": "sms_received", "event_payload": {"document_id": ident}}
    body = json.dumps({"channel": channel, "text": text, "metadata": metadata}).encode()
    request = urllib.request.Request(
        f"{slack_api_url}chat.postMessage",
        data=body,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json; charset=utf-8",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        result = json.load(answer)
    if not result.get("ok"):
        raise SystemExit(f"Slack refused a post: {result.get('error')}")


def drain(
    provider_url: str, slack_api_url: str, database: str, routes: dict[str, str], since: int
) -> int:
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE IF NOT EXISTS seen (document_id TEXT PRIMARY KEY)")
    posted = 0
    while True:
        page = fetch(provider_url, since)
        new = 0
        for message in page["messages"]:
            ident = str(message["documentId"])
            if db.execute("SELECT 1 FROM seen WHERE document_id = ?", (ident,)).fetchone():
                continue
            channel = routes.get(str(message.get("recipient")), routes.get("*"))
            if channel is not None:
                post(
                    slack_api_url, channel, f"SMS from +{message['from']}: {message['text']}", ident
                )
                posted += 1
            db.execute("INSERT INTO seen VALUES (?)", (ident,))
            db.commit()
            new += 1
        newest = int(page["newestMessageTimestamp"])
        if new == 0 and newest <= since:
            return posted
        since = max(since, newest)


def main() -> None:
    provider_url, slack_api_url, database, routes, since = sys.argv[1:6]
    print(drain(provider_url, slack_api_url, database, json.loads(routes), int(since)))


if __name__ == "__main__":
    main()
