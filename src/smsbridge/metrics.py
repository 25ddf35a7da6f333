"""Prometheus metrics, one registry per running bridge (served at /metrics)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from smsbridge.privacy import account_label

LAG_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """Series are labelled by account label (`Account.label`), never by provider user name,
    phone number or text."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self._labels = dict(labels or {})  # provider user name -> label
        self.registry = CollectorRegistry()
        self.polls = Counter(
            "smsbridge_polls", "Successful poll cycles.", ["account"], registry=self.registry
        )
        self.poll_errors = Counter(
            "smsbridge_poll_errors",
            "Failed poll cycles, by cause (transient, rejected, malformed, database, unexpected).",
            ["account", "cause"],
            registry=self.registry,
        )
        self.bridged = Counter(
            "smsbridge_messages_bridged",
            "SMS posted to Slack.",
            ["account"],
            registry=self.registry,
        )
        self.failed = Counter(
            "smsbridge_messages_failed",
            "SMS Slack refused (archived or missing channel, ...).",
            ["account"],
            registry=self.registry,
        )
        self.unrouted = Counter(
            "smsbridge_messages_unrouted",
            "SMS to a number with no route and no default route.",
            ["account"],
            registry=self.registry,
        )
        self.invalid = Counter(
            "smsbridge_messages_invalid",
            "Records from the SMS provider that are not a readable SMS (kept as invalid).",
            ["account"],
            registry=self.registry,
        )
        self.http_rejected = Counter(
            "smsbridge_http_rejected",
            "Requests on the public port refused before reaching Slack's handler, by cause.",
            ["cause"],
            registry=self.registry,
        )
        self.pushes = Counter(
            "smsbridge_pushes",
            "Inbound SMS the gateway pushed, new or already known (from an earlier push or poll).",
            ["account", "result"],
            registry=self.registry,
        )
        self.pushes_rejected = Counter(
            "smsbridge_pushes_rejected",
            "Pushes from the gateway answered with an error, by cause (wrong_token, "
            "unreadable, slow_body, database_unavailable).",
            ["cause"],
            registry=self.registry,
        )
        self.polled_only = Counter(
            "smsbridge_polled_only",
            "With pushes on: SMS that polling found before any push (pushes lost upstream?).",
            ["account"],
            registry=self.registry,
        )
        self.outbound = Counter(
            "smsbridge_outbound_sms",
            "SMS people wrote in Slack, by outcome (sent, failed, refused).",
            ["account", "outcome"],
            registry=self.registry,
        )
        self.opt_changes = Counter(
            "smsbridge_opt_changes",
            "Numbers that opted out of (STOP) or back in to (START) SMS from a line.",
            ["account", "change"],
            registry=self.registry,
        )
        self.slack_429 = Counter(
            "smsbridge_slack_rate_limited",
            "Slack 429 answers.",
            ["channel"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "smsbridge_delivery_lag_seconds",
            "Time from the SMS's timestamp to its post in Slack.",
            ["account"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.backlog = Gauge(
            "smsbridge_backlog", "SMS waiting to be posted.", ["account"], registry=self.registry
        )

    def account(self, username: str) -> str:
        """The label of the account with this provider user name."""
        label = self._labels.get(username)
        return label if label is not None else account_label(username, None)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
