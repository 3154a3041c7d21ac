"""What a served run's result records beyond the harness's metrics: the server, the traffic
as asked and as achieved, goodput against the SLO, every request, and the server's log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.inference.base import RequestRecord
from llenergymeasure.measurement.serving.client import ServedRecord
from llenergymeasure.measurement.serving.goodput import RequestTiming, goodput, meets_slo
from llenergymeasure.measurement.window import MeasuredWindow
from llenergymeasure.results.schema import (
    ExperimentResult,
    QualityFlag,
    ServedRequest,
    ServingSummary,
    write_bytes_new_or_aside,
)

SERVER_LOG = "server.log"
MAX_ERRORS = 10


def requested_rate_rps(config: ExperimentConfig) -> float | None:
    """The arrival rate the traffic asks for (None: every request at once)."""
    traffic = config.traffic
    if traffic.mode == "bursty" and traffic.burst_size and traffic.burst_interval_s:
        return traffic.burst_size / traffic.burst_interval_s
    return traffic.target_qps if traffic.mode != "none" else None


def _tpot(record: RequestRecord) -> float | None:
    if record.first_token_s is None or record.output_tokens < 2:
        return None
    return (record.end_s - record.first_token_s) / (record.output_tokens - 1)


def _requests(
    window: MeasuredWindow, config: ExperimentConfig
) -> tuple[list[ServedRequest], list[str]]:
    records = window.records
    arrivals = [
        a if a is not None else r.start_s for r, a in zip(records, window.arrivals_s, strict=True)
    ]
    origin = min(arrivals) if arrivals else 0.0
    served: list[ServedRequest] = []
    errors: list[str] = []
    slo = config.server.slo if config.server is not None else None
    for record, arrived in zip(records, arrivals, strict=True):
        error = record.error if isinstance(record, ServedRecord) else None
        ttft = record.first_token_s - arrived if record.first_token_s is not None else None
        tpot = _tpot(record)
        verdict = (
            meets_slo(RequestTiming(error is None, ttft, tpot), slo) if slo is not None else None
        )
        if error is not None and error not in errors:
            errors.append(error)
        served.append(
            ServedRequest(
                arrival_s=arrived - origin,
                sent_s=record.start_s - origin,
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
                requested_output_tokens=getattr(record, "requested_output_tokens", None),
                latency_s=record.end_s - arrived,
                ttft_s=ttft if error is None else None,
                tpot_s=tpot if error is None else None,
                error=error,
                meets_slo=verdict,
            )
        )
    return served, errors


def serving_summary(
    config: ExperimentConfig, window: MeasuredWindow, server: dict[str, Any]
) -> ServingSummary:
    """The served run's summary from its measured window (``server``: how it was reached)."""
    requests, errors = _requests(window, config)
    sent = [r.sent_s for r in requests if not (r.error or "").startswith("not sent")]
    failed = sum(1 for r in requests if r.error is not None)
    span = max(sent) - min(sent) if len(sent) > 1 else 0.0
    served = config.server
    slo = served.slo if served is not None else None
    good = goodput([r.meets_slo for r in requests], window.seconds)
    counts = {getattr(r, "token_counts", "usage") for r in window.records}
    return ServingSummary(
        server=server,
        traffic_mode=config.traffic.mode,
        requested_rate_rps=requested_rate_rps(config),
        sent_rate_rps=(len(sent) - 1) / span if span > 0 else None,
        completed_rate_rps=(len(requests) - failed) / window.seconds if window.seconds > 0 else 0.0,
        max_concurrency=served.max_concurrency if served is not None else None,
        requests_sent=len(sent),
        requests_completed=len(requests) - failed,
        requests_failed=failed,
        errors=errors[:MAX_ERRORS],
        slo_ttft_ms=slo.ttft_ms if slo is not None else None,
        slo_tpot_ms=slo.tpot_ms if slo is not None else None,
        goodput_requests=good.requests if good is not None else None,
        goodput_fraction=good.fraction if good is not None else None,
        goodput_rps=good.per_second if good is not None else None,
        token_counts="usage" if counts <= {"usage"} else "chunks",
        notes=[
            "times are client-side perf_counter stamps, in seconds from the window's first "
            "arrival; with traffic.mode none every request arrives when its pass opens",
            "sent_rate_rps = (sent - 1) / span of send times: the rate the server really got",
        ],
        requests=requests,
    )


def attach_serving(
    result: ExperimentResult,
    backend: object,
    window: MeasuredWindow,
    config: ExperimentConfig,
    directory: Path,
) -> None:
    """A served run only: its summary and flag on ``result``, the server's log copied into
    ``directory`` (where the result goes) as server.log."""
    info = getattr(backend, "server_info", None)
    if config.server is None or not isinstance(info, dict):
        return
    server = dict(info)
    log = server.get("log_file")
    if isinstance(log, str) and Path(log).is_file():
        directory.mkdir(parents=True, exist_ok=True)
        write_bytes_new_or_aside(directory / SERVER_LOG, Path(log).read_bytes())
        server["log_file"] = SERVER_LOG
        server["log_source"] = log
    summary = serving_summary(config, window, server)
    result.serving = summary
    if summary.requests_failed:
        result.flags.append(
            QualityFlag(
                code="serving_requests_failed",
                severity="untrusted",
                message=f"{summary.requests_failed} of {len(summary.requests)} requests failed "
                f"in the measured window (first: {summary.errors[0] if summary.errors else '?'}); "
                "the energy covers a load other than the one asked for",
            )
        )
