"""Webhook URLs: which are accepted, and how they are shown.

A webhook URL often carries a secret (``https://user:pass@host``, ``?token=...``, Slack's
``/services/T.../B.../<secret>``), so it is never printed or logged whole: :func:`redact_url`
keeps the scheme, the host and the port, and the path segments that do not look like tokens.
"""

from __future__ import annotations

import re
import urllib.parse

REDACTED = "<redacted>"
_PLAIN_SEGMENT = re.compile(r"^[a-z_-]{1,24}$")
"""A path segment shown as is: lower-case letters, ``-`` and ``_`` (``api``, ``hooks``)."""


def redact_url(url: str) -> str:
    """``url`` with credentials, query, fragment and token-like path segments replaced."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    user = f"{REDACTED}@" if parts.username or parts.password else ""
    segments = [s if _PLAIN_SEGMENT.match(s) or not s else REDACTED for s in parts.path.split("/")]
    path = "/".join(segments)
    query = f"?{REDACTED}" if parts.query else ""
    fragment = f"#{REDACTED}" if parts.fragment else ""
    return f"{parts.scheme}://{user}{host}{port}{path}{query}{fragment}"


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (None when it can): http(s) with a host, nothing else."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "it contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        return f"it is not a valid URL ({err})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"only http:// and https:// URLs are allowed, not {parts.scheme or 'none'!r}"
    if not parts.hostname:
        return "it has no host"
    return None
