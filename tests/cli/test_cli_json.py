"""`--json` prints exactly one strict JSON object on stdout on every exit path, with the exit
code the command gives without it: every command that has `--json`, over refusal cases (config
errors, missing files, hostile input, no results, usage errors) and the hostile corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import EXAMPLES, assert_clean, example_line, invoke

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
COMBINATION = "model: gpt2\nbackend: tensorrt\nfp_precision: float32\n"


def strict(text: str) -> Any:
    """One RFC 8259 JSON value: no NaN or infinity, nothing before or after it."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"--json output holds {constant}")

    return json.loads(text, parse_constant=refuse)


def refusal_cases(tmp: Path) -> list[list[str]]:
    combination = tmp / "combination.yaml"
    combination.write_text(COMBINATION)
    empty = tmp / "empty"
    empty.mkdir()
    missing = str(tmp / "missing.yaml")
    bomb = str(CORPUS / "experiment-alias-bomb.yaml")
    return [
        ["run"],
        ["run", missing],
        ["run", str(combination)],
        ["run", bomb],
        ["run", str(EXAMPLES / "experiment.yaml"), "--backend", "vllm"],
        ["run", "--model", "builtin:tiny-gpt2", "--backend", "vllm", "--batch-size", "4"],
        ["run", "--model", "builtin:tiny-gpt2", "--bogus"],
        ["config", "validate"],
        ["config", "validate", missing],
        ["config", "validate", str(combination)],
        ["config", "params", "--backend", "nope"],
        ["campaign", "validate", missing],
        ["campaign", "validate", str(CORPUS / "campaign-nothing-valid.yaml")],
        ["campaign", "status", str(tmp / "nowhere")],
        ["campaign", "status", str(empty)],
        ["results", "compare", str(tmp / "nowhere")],
        ["results", "compare", str(empty)],
    ]


def test_every_refusal_is_one_json_object_with_the_same_exit_code(tmp_path: Path) -> None:
    for args in refusal_cases(tmp_path):
        plain = invoke(*args)
        as_json = invoke(*args, "--json")
        assert_clean(plain)
        assert_clean(as_json)
        assert plain.exit_code != 0, args
        assert as_json.exit_code == plain.exit_code, (args, as_json.stderr)
        data = strict(as_json.stdout)
        assert isinstance(data, dict), args
        if "error" in data:  # a refusal (a plan with nothing valid is a report, not an error)
            assert data["ok"] is False and data["exit_code"] == plain.exit_code, args
            assert data["error"]["what"], args
            assert "error:" in as_json.stderr or "Error:" in as_json.stderr, args  # for people


def test_a_refusal_names_what_where_and_how_to_fix(tmp_path: Path) -> None:
    result = invoke("run", EXAMPLES / "experiment.yaml", "--backend", "vllm", "--json")
    error = strict(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    line = example_line("experiment.yaml", "batch_size:")
    assert error["where"].endswith(f"experiment.yaml:{line}")  # the pytorch.batch_size line
    assert "vllm.max_num_seqs" in error["fix"]


def test_a_cross_field_error_exits_2_under_config_validate_json(tmp_path: Path) -> None:
    path = tmp_path / "combination.yaml"
    path.write_text(COMBINATION)
    result = invoke("config", "validate", path, "--json")
    assert result.exit_code == 2
    data = strict(result.stdout)
    assert data["error"]["type"] == "InvalidCombinationError"
    assert "fp_precision=float32" in data["error"]["what"]


def test_a_usage_error_under_json_is_json() -> None:
    result = invoke("config", "validate", "--json")
    assert result.exit_code == 2
    assert "Missing argument" in strict(result.stdout)["error"]["what"]


def test_json_after_double_dash_is_not_an_option(tmp_path: Path) -> None:
    result = invoke("config", "validate", "--", "--json")
    assert result.exit_code == 2 and result.stdout == ""  # a file named --json, not found


@pytest.mark.parametrize("path", sorted(CORPUS.glob("experiment-*.yaml")), ids=lambda p: p.stem)
def test_hostile_documents_through_config_validate_json(path: Path) -> None:
    plain, as_json = (
        invoke("config", "validate", path),
        invoke("config", "validate", path, "--json"),
    )
    assert_clean(as_json)
    assert as_json.exit_code == plain.exit_code
    data = strict(as_json.stdout)
    assert data.get("valid") is True if as_json.exit_code == 0 else data["ok"] is False
