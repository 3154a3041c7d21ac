"""A real ``vllm serve`` (the CPU build) on 127.0.0.1, started and stopped by ``llem run``:
one server for the module, a poisson stream of a few dozen requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.measurement.serving.server import port_in_use
from llenergymeasure.results.schema import ExperimentResult, load_result

pytestmark = pytest.mark.slow

REQUESTS = 30
SERVED = {
    "model": "builtin:tiny-gpt2",
    "backend": "vllm",
    "fp_precision": "bfloat16",
    "max_input_tokens": 64,
    "max_output_tokens": 8,
    "dataset": {"name": "builtin:conversations", "num_prompts": REQUESTS},
    "traffic": {"mode": "poisson", "target_qps": 10},
    "warmup": {"max_prompts": 4, "convergence_detection": False},
    "baseline": {"duration_sec": 0.5},
    "energy": {"source": "estimate"},
    "server": {"max_concurrency": 8, "slo": {"ttft_ms": 5000, "tpot_ms": 1000}},
    "vllm": {"max_num_seqs": 8, "kv_cache_space_gib": 0.25},
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, vllm_module: Any
) -> Iterator[tuple[ExperimentResult, Path, str]]:
    """``llem run`` of a served config, once: its result, result directory and CLI output."""
    root = tmp_path_factory.mktemp("served")
    path = root / "serve.yaml"
    path.write_text(yaml.safe_dump(SERVED), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLEM_CACHE_DIR", str(tiny_model_dir.parent.parent))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("OMP_NUM_THREADS", "1")  # the server's engine: one thread on a small CPU
        run = CliRunner().invoke(app, ["run", str(path), "-o", str(root / "results")])
    assert run.exit_code == 0, run.output
    results = list((root / "results").glob("*/result.json"))
    assert len(results) == 1, run.output
    saved = results[0]
    yield load_result(saved), saved.parent, run.output


def test_every_request_is_recorded_with_its_latencies_and_tokens(
    served: tuple[ExperimentResult, Path, str],
) -> None:
    result, _directory, _output = served
    serving = result.serving
    assert serving is not None
    assert serving.requests_failed == 0 and serving.errors == []
    assert serving.requests_sent == len(serving.requests) == result.metrics.num_requests
    assert len(serving.requests) % REQUESTS == 0  # whole passes
    assert serving.token_counts == "usage"
    for request in serving.requests:
        assert request.ttft_s is not None and 0 < request.ttft_s <= request.latency_s
        assert 1 <= request.output_tokens <= request.requested_output_tokens <= 8
        assert request.input_tokens <= 64
    assert serving.requested_rate_rps == 10 and serving.sent_rate_rps is not None
    assert serving.goodput_requests is not None
    metrics = result.metrics
    assert metrics.ttft_from_arrival_s is not None and metrics.tpot_s is not None
    assert metrics.latency_s.p99 >= metrics.latency_s.p50 > 0
    assert metrics.output_tokens == sum(r.output_tokens for r in serving.requests)


def test_the_energy_is_the_window_s_and_says_it_is_an_estimate(
    served: tuple[ExperimentResult, Path, str],
) -> None:
    result, _directory, _output = served
    assert result.energy.source == "estimate" and result.energy.is_estimate
    assert result.metrics.energy_j is not None and result.metrics.energy_j > 0
    assert result.metrics.energy_per_token_raw_j is not None
    assert [d["kind"] for d in result.model["devices"]] == ["cpu"]


def test_the_server_is_gone_and_its_log_is_kept(
    served: tuple[ExperimentResult, Path, str],
) -> None:
    result, directory, _output = served
    assert result.serving is not None
    server = result.serving.server
    assert server["mode"] == "started" and "--max-num-seqs" in server["command"]
    with pytest.raises(ProcessLookupError):
        os.kill(server["pid"], 0)
    assert not port_in_use(int(server["url"].rsplit(":", 1)[1]))
    log = (directory / server["log_file"]).read_text(encoding="utf-8")
    assert "Application startup complete" in log
