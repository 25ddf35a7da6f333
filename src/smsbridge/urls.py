"""URLs as they may be shown: in logs, errors, `smsbridge check`. Pure."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def hide_password(url: str) -> str:
    """`url` with any password replaced by ***: postgresql://app:***@db/bridge."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: show only its scheme
        return url.split(":", 1)[0] + "://…"
    if not password:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
