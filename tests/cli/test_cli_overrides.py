"""`llem run` flags over the file: `--backend` moves or refuses the old backend's section, a
flag the chosen backend has no key for names the key to use; every refusal exits 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.cli.overrides import apply_flags
from llenergymeasure.config.loader import read_yaml, validate_experiment
from llenergymeasure.exceptions import ConfigError

from .helpers import EXAMPLES, example_line, invoke

WriteYaml = Callable[..., Path]


def _flags(**given: object) -> dict[str, object]:
    return {f"--{key.replace('_', '-')}": value for key, value in given.items()}


def test_backend_moves_a_key_that_means_the_same(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "model: gpt2\nbackend: tensorrt\nfp_precision: float16\ntensorrt:\n  tp_size: 2\n"
    )
    data, lines = read_yaml(path)
    moved, notes = apply_flags(data, _flags(backend="vllm"), file=path, lines=lines)
    config = validate_experiment(moved)
    assert config.backend == "vllm" and config.vllm is not None
    assert config.vllm.tensor_parallel_size == 2 and config.tensorrt is None
    assert notes == ["--backend vllm: tensorrt.tp_size moved to vllm.tensor_parallel_size"]


def test_backend_drops_a_section_of_defaults(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  batch_size: 1\n  batching_strategy: static\n")
    data, lines = read_yaml(path)
    moved, notes = apply_flags(data, _flags(backend="vllm"), file=path, lines=lines)
    assert "pytorch" not in moved and validate_experiment(moved).backend == "vllm"
    assert "all defaults" in notes[0]


def test_backend_refuses_a_key_with_no_equal_naming_its_line(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  batching_strategy: sorted\n  batch_size: 8\n")
    data, lines = read_yaml(path)
    with pytest.raises(ConfigError) as info:
        apply_flags(data, _flags(backend="tensorrt"), file=path, lines=lines)
    assert info.value.exit_code == 2
    assert info.value.where == f"{path}:3"
    assert "pytorch.batching_strategy" in info.value.what


def test_a_flag_the_backend_has_no_key_for_names_the_key_to_use() -> None:
    with pytest.raises(ConfigError) as info:
        apply_flags({"model": "gpt2", "backend": "vllm"}, _flags(batch_size=4), file=None, lines={})
    assert "vllm.max_num_seqs" in (info.value.fix or "")


def test_run_with_backend_over_the_example_exits_2_with_file_and_line() -> None:
    result = invoke("run", EXAMPLES / "experiment.yaml", "--backend", "vllm")
    assert result.exit_code == 2
    line = example_line("experiment.yaml", "batch_size:")
    assert f"experiment.yaml:{line}: pytorch.batch_size" in result.stderr
