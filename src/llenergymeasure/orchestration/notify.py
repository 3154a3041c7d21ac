"""Optional webhook: POST a JSON summary when a campaign completes or fails.

Standard library only (urllib). A webhook that cannot be reached is logged, never a reason for
the campaign to fail.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from loguru import logger

from llenergymeasure.config.campaign_config import NotifyConfig

TIMEOUT_S = 10.0


def event_for(status: str) -> str | None:
    """Which ``notify.on`` event a final campaign status is: completion, failure or none."""
    if status == "completed":
        return "completion"
    if status in ("completed_with_failures", "stopped"):
        return "failure"
    return None  # interrupted by the user: they know


def send_webhook(url: str, payload: dict[str, Any], *, timeout_s: float = TIMEOUT_S) -> bool:
    """POST ``payload`` as JSON; True on a 2xx answer. Never raises."""
    body = json.dumps(payload, default=str).encode()
    try:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "llenergymeasure"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            ok = 200 <= response.status < 300
            if not ok:
                logger.warning("webhook {} answered HTTP {}", url, response.status)
            return ok
    except (urllib.error.URLError, OSError, ValueError) as err:
        logger.warning("webhook {} failed: {} (the campaign is not affected)", url, err)
        return False


def notify(config: NotifyConfig, status: str, payload: dict[str, Any]) -> bool | None:
    """Send the webhook if one is configured for this status's event; None when not sent."""
    event = event_for(status)
    if not config.webhook_url or event is None or event not in config.on:
        return None
    return send_webhook(config.webhook_url, {"event": event, **payload})
