"""The served runs' figure: J/request against p90 latency, a point per request rate, joined in
rate order; untrusted cycles left out; absent where nothing was served."""

from __future__ import annotations

import pytest

from llenergymeasure.report.figures import sections
from llenergymeasure.report.serving import serving_data, serving_figure
from llenergymeasure.results.schema import ExperimentResult, QualityFlag, ServingSummary

from .synthetic import config, grid_records, record, result, source

UNTRUSTED = QualityFlag(code="serving_requests_failed", severity="untrusted", message="x")


def _served(rate: float, cycle: int, *, jpt: float, latency_s: float, flags=()) -> ExperimentResult:
    cfg = {
        **config(16, 32, backend="vllm"),
        "name": f"vllm_qps{rate:g}",
        "traffic": {"mode": "poisson", "target_qps": rate},
        "server": {"max_concurrency": 8},
    }
    res = result(
        f"vllm_qps{rate:g}_c{cycle}", cfg, jpt=jpt, tps=100.0, latency_s=latency_s, flags=flags
    )
    res.serving = ServingSummary(
        server={"mode": "started"},
        traffic_mode="poisson",
        requested_rate_rps=rate,
        sent_rate_rps=rate * 0.9,
        completed_rate_rps=rate * 0.9,
        max_concurrency=8,
        requests_sent=4,
        requests_completed=4,
        requests_failed=0,
        goodput_fraction=0.5,
    )
    return res


def test_one_point_per_rate_in_rate_order_on_the_mean_of_used_cycles() -> None:
    records = [
        record(_served(8, 1, jpt=0.2, latency_s=0.4), 1),
        record(_served(2, 1, jpt=0.1, latency_s=0.1), 1),
        record(_served(2, 2, jpt=0.3, latency_s=0.3), 2),
        record(_served(2, 3, jpt=9.0, latency_s=9.0, flags=[UNTRUSTED]), 3),  # left out
    ]
    data = serving_data([source(records)])
    assert [row["rate"] for row in data.rows] == ["2 req/s", "8 req/s"]
    low = data.rows[0]
    # 64 tokens over 4 requests: J/request = 16 x J/token; p90 = 1.5 x latency (the builder)
    assert low["energy_per_request_j"] == pytest.approx(16 * (0.1 + 0.3) / 2)
    assert low["latency_p90_s"] == pytest.approx(1.5 * (0.1 + 0.3) / 2)
    assert low["cycles"] == 2 and low["goodput_pct"] == 50.0
    assert low["setup"] == data.rows[1]["setup"]  # one curve through both rates
    assert "concurrency 8" in low["setup"] and data.estimate
    figure = serving_figure([source(records)])
    assert figure is not None and figure.stem == "serving_curve"
    line = next(layer for layer in figure.spec["layer"] if layer["mark"]["type"] == "line")
    assert line["encoding"]["order"]["field"] == "requested_rate_rps"
    # a point carries its 95% CIs (the table's statistics), drawn as bars in both directions
    assert low["energy_per_request_j_low"] < low["energy_per_request_j"]
    assert low["energy_per_request_j"] < low["energy_per_request_j_high"]
    assert low["latency_p90_s_low"] < low["latency_p90_s"] < low["latency_p90_s_high"]
    rules = [layer for layer in figure.spec["layer"] if layer["mark"]["type"] == "rule"]
    assert {"x2", "y2"} <= {channel for rule in rules for channel in rule["encoding"]}


def test_the_section_is_there_only_for_served_results() -> None:
    served = source([record(_served(4, 1, jpt=0.2, latency_s=0.2), 1)])
    offline = source(grid_records(cycles=1))
    anchors = [s.anchor for s in sections([served], [], [])]
    assert "serving" in anchors
    assert "serving" not in [s.anchor for s in sections([offline], [], [])]
    assert serving_figure([offline]) is None
