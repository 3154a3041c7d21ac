"""Optional webhook: POST a JSON summary when a campaign completes or fails.

Standard library only (urllib). A webhook that cannot be reached is logged, never a reason for
the campaign to fail.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from llenergymeasure.config.campaign_config import NotifyConfig
from llenergymeasure.config.urls import redact_url, webhook_problem
from llenergymeasure.files import finite, json_bytes
from llenergymeasure.log import logger
from llenergymeasure.orchestration.executors.base import error_headline

if TYPE_CHECKING:
    from llenergymeasure.orchestration.campaign.manifest import Manifest
    from llenergymeasure.orchestration.campaign.outcome import CampaignOutcome

TIMEOUT_S = 10.0


def event_for(status: str) -> str | None:
    """Which ``notify.on`` event a final campaign status is: completion, failure or none."""
    if status == "completed":
        return "completion"
    if status in ("completed_with_failures", "stopped"):
        return "failure"
    return None  # interrupted by the user: they know


def send_webhook(url: str, payload: dict[str, Any], *, timeout_s: float = TIMEOUT_S) -> bool:
    """POST ``payload`` as JSON; True on a 2xx answer. Never raises; never logs the URL whole."""
    problem = webhook_problem(url)
    if problem:
        logger.warning("webhook {} not called: {}", redact_url(url), problem)
        return False
    body = json_bytes(finite(payload))  # strict JSON, environment secrets redacted
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
                logger.warning("webhook {} answered HTTP {}", redact_url(url), response.status)
            return ok
    except (urllib.error.URLError, OSError, ValueError, TypeError) as err:
        reason = getattr(err, "reason", err)
        shown = str(reason).replace(url, redact_url(url))
        logger.warning(
            "webhook {} failed: {} (the campaign is not affected)", redact_url(url), shown
        )
        return False


def notify(config: NotifyConfig, outcome: CampaignOutcome, manifest: Manifest) -> bool | None:
    """Send the webhook if one is configured for the outcome's event; None when not sent."""
    event = event_for(outcome.status)
    if not config.webhook_url or event is None or event not in config.on:
        return None
    return send_webhook(config.webhook_url, {"event": event, **payload(outcome, manifest)})


def payload(outcome: CampaignOutcome, manifest: Manifest) -> dict[str, Any]:
    """A JSON-ready summary (for the webhook)."""
    return {
        "campaign_name": manifest.campaign_name,
        "status": outcome.status,
        "output_dir": str(outcome.output_dir),
        "counts": outcome.counts,
        "executed": outcome.executed,
        "wall_s": round(outcome.wall_s, 3),
        "stop_reason": outcome.stop_reason,
        "failures": [
            {
                "exp_id": e.exp_id,
                "name": e.name,
                "cycle": e.cycle,
                "error": error_headline(e.error),
            }
            for e in outcome.failures
        ],
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
    }
