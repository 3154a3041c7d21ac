"""The served runs' figure: energy per request against latency, one point per request rate,
joined in rate order per server setup (what ML.ENERGY and ``vllm bench serve`` sweeps show).

A point is a served config's summary statistics (the table's: mean over its used cycles,
untrusted cycles left out, 95% CI, on the table's energy basis); its rate, achieved rate and
goodput come from the results' ``serving`` summaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean
from typing import Any

from llenergymeasure.report.data import EPR, FigureData, derived, energy_label, requests_per_cycle
from llenergymeasure.report.scatter import interval_bars, scatter_axes
from llenergymeasure.report.source import ReportSource
from llenergymeasure.report.specs import WIDTH, Figure, base_spec, tooltip_fields, wrapped_legend
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


LATENCY = "latency_p90_s"
STATISTIC = "mean, bars: 95% CI"


def serving_data(sources: Sequence[ReportSource]) -> FigureData:
    """One row per served config: J/request and p90 latency with their 95% CIs (the config's
    summary statistics, as in the table), its request rate, the rate achieved and goodput."""
    rows: list[dict[str, Any]] = []
    many = len(sources) > 1
    bases: set[str] = set()
    for source in sources:
        served = _cycles(source)
        requests = requests_per_cycle(source.records)
        for summary in source.summaries:
            cycles = served.get(summary.config_hash)
            latency = summary.stats.get(LATENCY)
            energy = derived(summary, requests.get(summary.config_hash))
            if not cycles or latency is None or energy[EPR.column] is None:
                continue
            bases.update(summary.energy_bases)
            first = cycles[0]
            rate = first.serving.requested_rate_rps if first.serving else None
            goodput = _mean([r.serving.goodput_fraction if r.serving else None for r in cycles])
            rows.append(
                {
                    "config": f"{source.label}: {first.name}" if many else first.name,
                    "setup": (f"{source.label}: " if many else "") + _setup(first),
                    "requested_rate_rps": rate,
                    "rate": f"{rate:g} req/s" if rate is not None else "all at once",
                    "sent_rate_rps": _mean(
                        [r.serving.sent_rate_rps if r.serving else None for r in cycles]
                    ),
                    **{k: v for k, v in energy.items() if k.startswith(EPR.column)},
                    LATENCY: latency.mean,
                    f"{LATENCY}_low": latency.ci_low,
                    f"{LATENCY}_high": latency.ci_high,
                    "goodput_pct": goodput * 100 if goodput is not None else None,
                    "cycles": latency.n,
                    "energy_label": energy_label(summary),
                    "estimate": bool(summary.energy_is_estimate),
                    "show_bars": True,
                }
            )
    rows.sort(key=lambda r: (r["setup"], r["requested_rate_rps"] or float("inf")))
    basis = "/".join(sorted(bases)) or "no"
    caption = (
        f"Each point is one served config: its mean J per request ({basis} energy basis) "
        "against its mean p90 latency from arrival, over its used cycles, bars 95% CIs; "
        "points of one server setup are joined in order of requested rate."
    )
    return FigureData(rows, caption, any(r["estimate"] for r in rows))


def serving_spec(data: FigureData) -> Figure:
    """J/request against p90 latency, a line per setup through its request rates, each point
    labelled with its rate and barred with its CIs (clipped and marked at an axis edge)."""
    x, y = LATENCY, EPR.column
    axes = scatter_axes(data.rows, (x, y), ("p90 latency from arrival (s)", EPR.label), STATISTIC)
    colour = {
        "field": "setup",
        "type": "nominal",
        "title": None,
        "legend": {**wrapped_legend(None), "orient": "bottom", "direction": "vertical"},
    }
    spec = base_spec("Served: energy per request against latency, by request rate", data)
    spec.update(
        width=WIDTH,
        height=320,
        layer=[
            *interval_bars(axes, colour),
            {
                "mark": {"type": "line", "point": {"filled": True, "size": 60}, "tooltip": True},
                "encoding": {
                    "x": axes.at(0, title=True),
                    "y": axes.at(1, title=True),
                    "color": colour,
                    "order": {"field": "requested_rate_rps", "type": "quantitative"},
                    "tooltip": tooltip_fields(
                        ("config", "config"),
                        ("rate", "requested rate"),
                        ("sent_rate_rps", "sent rate (req/s, achieved)"),
                        (y, "J/request"),
                        (f"{y}_low", "95% CI low"),
                        (f"{y}_high", "95% CI high"),
                        (x, "p90 latency (s)"),
                        (f"{x}_low", "95% CI low"),
                        (f"{x}_high", "95% CI high"),
                        ("goodput_pct", "goodput (% within SLO, mean of cycles)"),
                        ("energy_label", "energy"),
                        ("cycles", "cycles used"),
                    ),
                },
            },
            {
                "mark": {"type": "text", "dx": 8, "align": "left", "fontSize": 11},
                "encoding": {"x": axes.at(0), "y": axes.at(1), "text": {"field": "rate"}},
            },
        ],
    )
    return Figure(
        "serving_curve",
        "Served: energy against latency",
        spec,
        " ".join([data.caption, *axes.notes]),
        data.estimate,
    )


def serving_figure(sources: Sequence[ReportSource]) -> Figure | None:
    """The figure, where the sources hold served results with energy (else None)."""
    data = serving_data(sources)
    return serving_spec(data) if data.rows else None
