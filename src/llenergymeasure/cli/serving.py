"""The rows ``llem run`` adds for a served run: the server, the traffic as asked and as sent,
the requests' outcome, energy per request and goodput."""

from __future__ import annotations

from typing import Any


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g} req/s"


def serving_rows(serving: Any, metrics: Any) -> list[tuple[str, str]]:
    """(label, value) rows of a result's ``serving`` summary."""
    server = serving.server
    if server.get("mode") == "started":
        how = f"vllm serve started by llem at {server.get('url')} (ready in {server.get('ready_s')} s)"
        if server.get("log_file"):
            how += f", log {server['log_file']}"
    else:
        how = f"external server at {server.get('url')}"
    asked = (
        f"{serving.traffic_mode} at {_rate(serving.requested_rate_rps)}"
        if serving.requested_rate_rps is not None
        else "all at once"
    )
    limit = f", at most {serving.max_concurrency} in flight" if serving.max_concurrency else ""
    rows = [
        ("server", how),
        ("traffic asked / sent", f"{asked}{limit} / {_rate(serving.sent_rate_rps)}"),
        (
            "requests sent / completed / failed",
            f"{serving.requests_sent} / {serving.requests_completed} / {serving.requests_failed}",
        ),
    ]
    if metrics.energy_per_request_j is not None:
        rows.append(
            (
                f"energy per request ({metrics.energy_basis})",
                f"{metrics.energy_per_request_j:.4g} J",
            )
        )
    if serving.goodput_requests is not None:
        slo = ", ".join(
            part
            for part in (
                f"TTFT <= {serving.slo_ttft_ms:g} ms" if serving.slo_ttft_ms else "",
                f"TPOT <= {serving.slo_tpot_ms:g} ms" if serving.slo_tpot_ms else "",
            )
            if part
        )
        rows.append(
            (
                "goodput",
                f"{serving.goodput_requests} of {len(serving.requests)} "
                f"({serving.goodput_fraction:.0%}) within {slo}: {_rate(serving.goodput_rps)}",
            )
        )
    return rows
