"""vLLM through the harness and the CLI on the built-in model: a real engine every time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.inference.pytorch import PyTorchBackend

pytestmark = pytest.mark.slow

FAST = {
    "model": "builtin:tiny-gpt2",
    "backend": "vllm",
    "fp_precision": "float32",
    "max_output_tokens": 6,
    "dataset": {"name": "builtin:prompts", "num_prompts": 6},
    "warmup": {"max_prompts": 6},
    "baseline": {"enabled": False},
    "energy": {"source": "estimate"},
}


def llem(*args: object) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def experiment(**extra: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**FAST, **extra})


def test_llem_run_backend_vllm_measures_the_builtin_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = llem(
        "run", "--backend", "vllm", "--model", "builtin:tiny-gpt2", "--precision", "float32",
        "--num-prompts", "4", "--max-output-tokens", "4", "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    metrics, model = data["metrics"], data["model"]
    passes = data["timings"]["measured_passes"]
    assert metrics["num_requests"] == 4 * passes and metrics["tokens_per_second"] > 0
    assert metrics["energy_j"] is not None  # whichever source auto found here
    assert model["devices"] == [{"kind": "cpu", "cuda_index": None, "uuid": None, "name": None}]
    assert any("vLLM engine on cpu" in note for note in model["notes"])
    assert data["config"]["vllm"]["kv_cache_space_gib"] is None
    assert len(list(out.glob("*/result.json"))) == 1


def test_parameter_counts_match_the_pytorch_backend() -> None:
    from llenergymeasure.measurement.inference.vllm import VLLMBackend

    vllm = VLLMBackend()
    try:
        ours = vllm.load(experiment())
    finally:
        vllm.unload()
    torch_backend = PyTorchBackend()
    reference = torch_backend.load(experiment(backend="pytorch"))
    torch_backend.unload()
    assert ours.num_parameters == reference.num_parameters
    assert ours.non_embedding_parameters == reference.non_embedding_parameters
    assert ours.output_projection_parameters == reference.output_projection_parameters


def test_streaming_yaml_reports_ttft_and_itl(write_yaml: Any, tmp_path: Path) -> None:
    path = write_yaml(
        """
        model: builtin:tiny-gpt2
        backend: vllm
        fp_precision: float32
        max_output_tokens: 6
        min_output_tokens: 6
        streaming: true
        dataset: {name: builtin:prompts, num_prompts: 4}
        warmup: {max_prompts: 6}
        baseline: {enabled: false}
        energy: {source: estimate}
        vllm: {max_num_seqs: 4, block_size: 32}
        """
    )
    result = llem("run", path, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["ttft_s"]["count"] == metrics["num_requests"]
    assert metrics["itl_s"]["count"] == metrics["num_requests"] * 5
    assert metrics["tpot_s"] is not None and metrics["ttft_from_arrival_s"] is not None


def test_a_campaign_mixing_pytorch_and_vllm_runs_every_cycle(tmp_path: Path) -> None:
    file = tmp_path / "campaign.yaml"
    file.write_text(
        """\
campaign_name: mixed-backends
base_config:
  model: builtin:tiny-gpt2
  fp_precision: float32
  max_output_tokens: 4
  dataset: {num_prompts: 3, synthetic_input_tokens: 8}
  warmup: {max_prompts: 2, min_prompts: 1, convergence_detection: false}
  baseline: {enabled: false}
  energy: {source: estimate}
grid:
  backends: [pytorch, vllm]
execution:
  cycles: 2
""",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    run = llem("campaign", "run", file, "-o", out, "--yes")
    assert run.exit_code == 0, run.output
    entries = json.loads((out / "manifest.json").read_text())["entries"]
    assert len(entries) == 4 and {e["status"] for e in entries} == {"completed"}
    backends = sorted(
        json.loads(path.read_text())["config"]["backend"] for path in out.glob("**/result.json")
    )
    assert backends == ["pytorch", "pytorch", "vllm", "vllm"]
