"""The served runs' figure: energy per request against latency, one point per request rate,
joined in rate order per server setup (what ML.ENERGY and ``vllm bench serve`` sweeps show).

Read from the results' ``serving`` summaries; a point is the mean over a config's used
cycles (untrusted cycles left out, as in every aggregate), on one energy basis for the whole
figure (adjusted when every served result has it, else raw).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean
from typing import Any

from llenergymeasure.report.data import FigureData
from llenergymeasure.report.source import ReportSource
from llenergymeasure.report.specs import WIDTH, Figure, _base, _legend, _q, _tooltip
from llenergymeasure.results.aggregation import adjusted_energy, table_basis
from llenergymeasure.results.schema import ExperimentResult


def _setup(result: ExperimentResult) -> str:
    """What a curve holds fixed: the model, backend and server setup (not the rate)."""
    config = result.config
    section = config.get(str(config.get("backend")), None) or {}
    server = config.get("server") or {}
    parts = [
        str(config.get("model", {}).get("name")),
        str(config.get("backend")),
        f"{config.get('traffic', {}).get('mode')} traffic",
    ]
    if server.get("max_concurrency") is not None:
        parts.append(f"concurrency {server['max_concurrency']}")
    if section.get("max_num_seqs") is not None:
        parts.append(f"max_num_seqs {section['max_num_seqs']}")
    return ", ".join(parts)


def _cycles(source: ReportSource) -> dict[str, list[ExperimentResult]]:
    """Config hash -> its completed, trusted served results."""
    found: dict[str, list[ExperimentResult]] = {}
    for record in source.records:
        result = record.result
        if record.status != "completed" or result is None or result.serving is None:
            continue
        if result.untrusted:
            continue
        found.setdefault(record.config_hash, []).append(result)
    return found


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if len(present) == len(values) and present else None


def serving_data(sources: Sequence[ReportSource]) -> FigureData:
    """One row per served config: mean J/request, latency and TTFT p90, rates, goodput."""
    grouped = [(s, cycles) for s in sources for cycles in _cycles(s).values()]
    basis = table_basis(r for _, cycles in grouped for r in cycles)
    rows: list[dict[str, Any]] = []
    many = len(sources) > 1
    for source, cycles in grouped:
        first = cycles[0]
        serving = first.serving
        assert serving is not None

        def per_request(result: ExperimentResult) -> float | None:
            m = result.metrics
            energy = adjusted_energy(result) if basis == "adjusted" else m.energy_j
            return energy / m.num_requests if energy is not None and m.num_requests else None

        energy = _mean([per_request(r) for r in cycles])
        latency = _mean([r.metrics.latency_s.p90 for r in cycles])
        if energy is None or latency is None:
            continue
        ttft = _mean(
            [
                r.metrics.ttft_from_arrival_s.p90 if r.metrics.ttft_from_arrival_s else None
                for r in cycles
            ]
        )
        goodput = _mean([r.serving.goodput_fraction if r.serving else None for r in cycles])
        rate = serving.requested_rate_rps
        rows.append(
            {
                "config": f"{source.label}: {first.name}" if many else first.name,
                "setup": (f"{source.label}: " if many else "") + _setup(first),
                "requested_rate_rps": rate,
                "rate": f"{rate:g} req/s" if rate is not None else "all at once",
                "sent_rate_rps": _mean(
                    [r.serving.sent_rate_rps if r.serving else None for r in cycles]
                ),
                "energy_per_request_j": energy,
                "latency_p90_s": latency,
                "ttft_p90_s": ttft,
                "goodput_pct": goodput * 100 if goodput is not None else None,
                "cycles": len(cycles),
                "estimate": any(r.energy.is_estimate for r in cycles),
            }
        )
    rows.sort(key=lambda r: (r["setup"], r["requested_rate_rps"] or float("inf")))
    caption = (
        f"Each point is one served config: mean J per request ({basis or 'no'} energy basis) "
        "against mean p90 latency from arrival, over its used cycles; points of one server "
        "setup are joined in order of requested rate."
    )
    return FigureData(rows, caption, any(r["estimate"] for r in rows))


def serving_spec(data: FigureData) -> Figure:
    """J/request against p90 latency, a line per setup through its request rates, each point
    labelled with its rate."""
    spec = _base("Served: energy per request against latency, by request rate", data)
    spec.update(
        width=WIDTH,
        height=320,
        encoding={
            "x": _q("latency_p90_s", "p90 latency from arrival (s)"),
            "y": _q("energy_per_request_j", "energy per request (J)"),
            "color": {
                "field": "setup",
                "type": "nominal",
                "title": None,
                "legend": {**_legend(None), "orient": "bottom", "direction": "vertical"},
            },
            "order": {"field": "requested_rate_rps", "type": "quantitative"},
        },
        layer=[
            {
                "mark": {"type": "line", "point": {"filled": True, "size": 60}, "tooltip": True},
                "encoding": {
                    "tooltip": _tooltip(
                        ("config", "config"),
                        ("rate", "requested rate"),
                        ("sent_rate_rps", "sent rate (req/s, achieved)"),
                        ("energy_per_request_j", "J/request"),
                        ("latency_p90_s", "p90 latency (s)"),
                        ("ttft_p90_s", "p90 TTFT from arrival (s)"),
                        ("goodput_pct", "goodput (% within SLO)"),
                        ("cycles", "cycles used"),
                    )
                },
            },
            {
                "mark": {"type": "text", "dx": 8, "align": "left", "fontSize": 11},
                "encoding": {"text": {"field": "rate"}},
            },
        ],
    )
    return Figure(
        "serving_curve", "Served: energy against latency", spec, data.caption, data.estimate
    )


def serving_figure(sources: Sequence[ReportSource]) -> Figure | None:
    """The figure, where the sources hold served results with energy (else None)."""
    data = serving_data(sources)
    return serving_spec(data) if data.rows else None
