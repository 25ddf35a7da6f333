"""smsbridge: carries inbound SMS from an SMS gateway into Slack threads, exactly once."""

__version__ = "0.1.0"
