"""`llem run` end to end on the built-in offline model, and its failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import EXAMPLES, assert_clean, invoke

FAST = [
    "--model", "builtin:tiny-gpt2", "--precision", "float32",
    "--num-prompts", "4", "--max-output-tokens", "4", "--batch-size", "2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _offline(offline_model_cache: Path) -> None:
    """Built-in model from the session cache; the Hub offline."""


def fast_yaml(write_yaml, **extra: str) -> Path:  # type: ignore[no-untyped-def]
    body = """
        model: builtin:tiny-gpt2
        fp_precision: float32
        max_output_tokens: 4
        dataset: {num_prompts: 4}
        baseline: {duration_sec: 0.2, cache_ttl_sec: 0}
        warmup: {max_prompts: 3}
        energy: {source: estimate}
    """
    return write_yaml(body.rstrip(" ") + "".join(f"        {k}: {v}\n" for k, v in extra.items()))


def test_run_writes_a_result_that_says_how_energy_was_obtained(write_yaml, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = invoke("run", fast_yaml(write_yaml), "-o", out, "--json")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    files = list(out.glob("*/result.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == data
    metrics, energy = data["metrics"], data["energy"]
    passes = data["timings"]["measured_passes"]  # whole passes until the window is long enough
    assert passes >= 1 and data["energy"]["passes"] == passes
    assert metrics["num_requests"] == 4 * passes and 0 < metrics["output_tokens"] <= 16 * passes
    bound, target = energy["error_bound_pct"], energy["target_error_pct"]
    assert bound is not None and target is not None and bound <= target
    assert not [f for f in data["flags"] if f["code"] == "window_too_short"]
    assert metrics["tokens_per_second"] > 0 and metrics["energy_per_token_raw_j"] is not None
    assert energy["method"] == "estimate" and energy["is_estimate"] is True
    assert energy["baseline_power_w"] is not None and metrics["energy_basis"] == "adjusted"
    # on a busy machine the CPU estimate's idle baseline can exceed the window's: then the
    # adjusted figures are withheld and flagged, never silently replaced by raw ones
    withheld = {f["code"] for f in data["flags"]} >= {"adjusted_energy_nonpositive"}
    assert (metrics["energy_per_token_j"] is None) == withheld
    assert data["model"]["num_parameters"] > 0 and data["environment"]["python"]


def test_flags_alone_run_an_experiment_and_the_table_says_estimate(tmp_path: Path) -> None:
    result = invoke("run", *FAST, "-o", tmp_path)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert "ESTIMATE" in result.stdout and "tokens/s" in result.stdout
    assert "energy error" in result.stdout and "devices measured" in result.stdout
    saved = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert saved["config"]["pytorch"]["batch_size"] == 2
    assert saved["config"]["dataset"]["num_prompts"] == 4


def test_streaming_reports_ttft_and_itl(write_yaml, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", fast_yaml(write_yaml, streaming="true"), "-o", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["ttft_s"]["count"] == metrics["num_requests"]
    assert metrics["num_requests"] % 4 == 0  # whole passes over the 4 prompts
    assert metrics["ttft_from_arrival_s"]["count"] == metrics["num_requests"]
    assert metrics["tpot_s"] is not None
    assert metrics["ttft_s"]["p50"] <= metrics["latency_s"]["p50"]
    assert metrics["itl_s"]["count"] > 0


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--model", "./no/such/model"], 1, "no/such/model"),
        (
            ["--model", "builtin:tiny-gpt2", "--backend", "tensorrt", "-p", "float16"],
            1,
            "needs an NVIDIA GPU",
        ),
        (["--model", "builtin:tiny-gpt2", "--backend", "pytorchh"], 2, "pytorch"),
        (["--model", "builtin:tiny-gpt2", "--precision", "float8"], 2, "float8"),
        ([], 2, "nothing to run"),
    ],
)
def test_bad_inputs_end_with_one_message_and_no_result(
    tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    result = invoke("run", *args, "-o", tmp_path)
    assert_clean(result)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert not list(tmp_path.glob("*/result.json"))


def test_unreadable_dataset_is_reported_and_nothing_is_written(write_yaml, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = fast_yaml(write_yaml, dataset=f"{{name: {tmp_path / 'missing.jsonl'}}}")
    result = invoke("run", config, "-o", tmp_path / "out")
    assert_clean(result)
    assert result.exit_code == 1 and "missing.jsonl" in result.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*/result.json"))


def test_an_absent_energy_sensor_asked_for_by_name_is_an_error(write_yaml, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = fast_yaml(write_yaml)
    config.write_text(config.read_text().replace("source: estimate", "source: nvml"))
    result = invoke("run", config, "-o", tmp_path)
    assert_clean(result)
    if result.exit_code == 0:
        pytest.skip("this machine has a usable NVIDIA GPU")
    assert result.exit_code == 1 and "NVML" in result.output
    assert "fix:" in result.output


def test_the_console_script_runs_the_example(tmp_path: Path) -> None:
    """The README's main job, through the real `llem` entry point."""
    llem = Path(sys.executable).parent / "llem"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(llem), "run", str(EXAMPLES / "experiment.yaml"), "-o", str(tmp_path), "-n", "4"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "result:" in done.stdout and "Traceback" not in done.stderr
    assert len(list(tmp_path.glob("*/result.json"))) == 1


def test_quality_flags_are_shown_in_the_table_and_the_json(write_yaml, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A warmup that cannot reach a CV of 1e-9 ends unconverged: a real warning flag."""
    config = fast_yaml(write_yaml)
    config.write_text(
        config.read_text().replace(
            "warmup: {max_prompts: 3}",
            "warmup: {max_prompts: 6, min_prompts: 1, window_size: 2, cv_threshold: 1.0e-9}",
        )
    )
    shown = invoke("run", config, "-o", tmp_path / "text")
    assert_clean(shown)
    assert shown.exit_code == 0, shown.output
    assert "warning warmup_not_converged: warmup ended after 6 prompts" in shown.stdout
    as_json = invoke("run", config, "-o", tmp_path / "json", "--json")
    flags = {f["code"]: f["severity"] for f in json.loads(as_json.stdout)["flags"]}
    assert flags["warmup_not_converged"] == "warning"


def test_untrusted_flags_come_first_and_say_the_result_is_left_out(capsys) -> None:  # type: ignore[no-untyped-def]
    from llenergymeasure.cli.run import render_flags
    from llenergymeasure.results.schema import QualityFlag

    render_flags(
        [
            QualityFlag(code="warmup_not_converged", severity="warning", message="not steady"),
            QualityFlag(code="gpu_contended", severity="untrusted", message="pid 42 [on] GPU"),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("UNTRUSTED: 1 finding(s)") and "left out of aggregates" in lines[0]
    assert lines[1] == "untrusted gpu_contended: pid 42 [on] GPU"  # markup in messages is escaped
    assert lines[2] == "warning warmup_not_converged: not steady"


def test_the_energy_error_row_gives_the_bound_passes_and_cross_check() -> None:
    from llenergymeasure.cli.run import _energy_trust
    from llenergymeasure.results.schema import EnergyProvenance

    energy = EnergyProvenance(
        source="nvml",
        method="counter",
        is_estimate=False,
        window_s=10.4,
        error_bound_pct=0.48,
        target_error_pct=1.0,
        passes=3,
        crosscheck={"disagreement_pct": 2.25, "allowance_pct": 12.0},
    )
    assert _energy_trust(energy) == (
        "<= 0.48% from the reading's resolution (target 1%); window 10.4 s in 3 pass(es); "
        "counter vs polled power 2.2% apart (allowed 12.0%)"
    )
    bare = EnergyProvenance(source="x", method="estimate", is_estimate=True)
    assert _energy_trust(bare) == ""


def test_an_estimate_shows_no_error_bound_and_names_its_method_once() -> None:
    from llenergymeasure.cli.run import _energy_trust, energy_method
    from llenergymeasure.results.schema import EnergyProvenance

    estimate = EnergyProvenance(
        source="estimate", method="estimate", is_estimate=True, window_s=5.0, error_bound_pct=0.23
    )
    assert _energy_trust(estimate) == ""  # a counter's resolution bounds no model's error
    assert energy_method(estimate) == "estimate"
    measured = EnergyProvenance(source="nvml", method="counter", is_estimate=False)
    assert energy_method(measured) == "nvml / counter"


def test_sizes_and_figures_are_written_without_exponents() -> None:
    from llenergymeasure.cli.run import _fmt, mib

    assert mib(1_824_522_240) == "1,740 MiB"
    assert mib(None) == "n/a"
    assert _fmt(1740.4, " J") == "1,740 J"
    assert _fmt(0.01234, " s") == "0.0123 s"
    assert _fmt(3.1e12) == "3.1e+12"  # FLOPs: exponents where digits would not be read


def test_counts_are_in_the_singular_for_one() -> None:
    from llenergymeasure.cli.campaign import plural

    assert f"{plural(1, 'experiment')} x {plural(1, 'cycle')}" == "1 experiment x 1 cycle"
    assert plural(1200, "run") == "1,200 runs"
