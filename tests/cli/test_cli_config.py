"""`llem config validate|params|schema` and `llem --version`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure import __version__
from llenergymeasure.config.backend_configs import VLLMConfig
from llenergymeasure.config.loader import load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.orchestration.grid import config_hash

from .helpers import EXAMPLES, assert_clean, invoke, run_main

WriteYaml = Callable[..., Path]

EXPERIMENT = EXAMPLES / "experiment.yaml"


# --- config validate ---------------------------------------------------------------------------


def test_validate_example_experiment() -> None:
    result = invoke("config", "validate", EXPERIMENT)
    assert_clean(result)
    assert result.exit_code == 0
    digest = config_hash(load_experiment_config(EXPERIMENT))
    assert "valid" in result.output
    assert digest[:12] in result.output
    assert "pytorch / builtin:tiny-gpt2 / bfloat16" in result.output


def test_validate_json_has_the_resolved_config() -> None:
    result = invoke("config", "validate", EXPERIMENT, "--json")
    assert_clean(result)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["config_hash"] == config_hash(load_experiment_config(EXPERIMENT))
    assert data["hardware_warnings"] == []
    assert data["config"]["model"]["name"] == "builtin:tiny-gpt2"
    assert data["config"]["pytorch"]["batch_size"] == 4
    # resolved: defaults and preset values are filled in
    assert data["config"]["decoder"]["do_sample"] is False
    ExperimentConfig.model_validate(data["config"])


def test_validate_shows_hardware_warnings(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  attn_implementation: flash_attention_2\n")
    result = invoke("config", "validate", path)
    assert_clean(result)
    assert result.exit_code == 0
    assert "Ampere" in result.output


def test_validate_combination_exits_2(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml("model: gpt2\nbackend: tensorrt\nfp_precision: float32\n")
    run = run_main(monkeypatch, capsys, "config", "validate", path)
    assert run.code == 2  # unusable as written, as --help says
    assert run.out == ""
    assert str(path) in run.err
    assert "fp_precision=float32" in run.err
    assert "fix:" in run.err
    assert "Traceback" not in run.err


@pytest.mark.parametrize(
    ("text", "line", "needles"),
    [
        ("model: gpt2\nmax_output_tokns: 5\n", ":2", ["did you mean 'max_output_tokens'"]),
        ("model: gpt2\npytorch:\n  batch_size: big\n", ":3", ["pytorch.batch_size", "'big'"]),
        ("model: gpt2\nfp_precision: float64\n", ":2", ["'float64'", "bfloat16"]),
        ("model: gpt2\npytorch: [1, 2\n", ":3", ["YAML syntax error"]),
        ("- model: gpt2\n", "", ["mapping"]),
    ],
    ids=["typo", "wrong-type", "bad-choice", "yaml-syntax", "not-a-mapping"],
)
def test_validate_unusable_file_exits_2(
    text: str,
    line: str,
    needles: list[str],
    write_yaml: WriteYaml,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_yaml(text, "experiment.yaml")
    run = run_main(monkeypatch, capsys, "config", "validate", path)
    assert run.code == 2, run.out + run.err
    assert f"{path}{line}" in run.err
    for needle in needles:
        assert needle in run.err, run.err
    assert "Traceback" not in run.err


def test_app_reports_invalid_combination_as_exit_2_without_raising(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\nbackend: tensorrt\nfp_precision: float32\n")
    result = invoke("config", "validate", path)
    assert_clean(result)
    assert result.exit_code == 2  # an unusable config, as --help says
    assert "fp_precision=float32" in result.output


# --- config params ---------------------------------------------------------------------------


def test_params_for_one_backend_as_json() -> None:
    result = invoke("config", "params", "--backend", "vllm", "--json")
    assert_clean(result)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["vllm"]
    assert list(data["vllm"]) == list(VLLMConfig.model_fields)
    seqs = data["vllm"]["max_num_seqs"]
    assert seqs["default"] == 256
    assert seqs["type"] == "int"
    assert data["vllm"]["block_size"]["options"] == [8, 16, 32, 64, 128]
    assert data["vllm"]["tensor_parallel_size"]["requires"][0]["needs"] == "several GPUs"


def test_params_table_lists_vllm_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no cell wraps
    result = invoke("config", "params", "--backend", "vllm")
    assert_clean(result)
    assert result.exit_code == 0
    cells = [line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line]
    keys = [cell for cell in cells if cell]  # a wrapped description adds a row without a key
    assert keys == list(VLLMConfig.model_fields)
    assert "[8, 16, 32]" not in result.output  # options are listed plainly
    assert "8, 16, 32" in result.output


def test_params_without_backend_lists_every_section() -> None:
    result = invoke("config", "params", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["experiment", "pytorch", "vllm", "tensorrt"]
    assert "decoder.preset" in data["experiment"]
    assert data["experiment"]["fp_precision"]["options"] == ["float32", "float16", "bfloat16"]
    assert "batch_size" in data["pytorch"]


def test_params_unknown_backend_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_main(monkeypatch, capsys, "config", "params", "--backend", "vlm")
    assert run.code == 2
    assert "unknown backend 'vlm'" in run.err
    assert "did you mean 'vllm'" in run.err
    assert "pytorch, vllm, tensorrt" in run.err


# --- config schema -----------------------------------------------------------------------------


def test_schema_campaign_is_json() -> None:
    result = invoke("config", "schema", "campaign")
    assert_clean(result)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"campaign_name", "grid", "base_config", "experiments"} <= set(schema["properties"])


def test_schema_defaults_to_experiment() -> None:
    result = invoke("config", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == set(ExperimentConfig.model_fields)


def test_schema_unknown_kind_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_main(monkeypatch, capsys, "config", "schema", "grid")
    assert run.code == 2
    assert "experiment|campaign" in run.err


# --- top level -------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"llem {__version__}"


def test_no_args_shows_help() -> None:
    result = invoke()
    assert "campaign" in result.output and "config" in result.output


@pytest.mark.parametrize(
    "command", [["config", "validate"], ["config", "params"], ["config", "schema"]]
)
def test_every_command_help_has_an_example(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_params_show_an_optional_text_type_as_str_or_none() -> None:
    data = json.loads(invoke("config", "params", "--json").stdout)
    assert data["experiment"]["model.revision"]["type"] == "str | None"
    assert not any("Annotated" in p["type"] for s in data.values() for p in s.values())


def test_params_table_never_cuts_a_key() -> None:
    result = invoke("config", "params")  # not a terminal: Rich draws 80 columns
    assert result.exit_code == 0 and "…" not in result.stdout
