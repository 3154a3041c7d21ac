"""The campaign commands that never need torch: status, dry run, export, validate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from llenergymeasure.cli.app import app

from .helpers import FakeExecutor, campaign_yaml, prepare
from .test_runner import runner

PROBE = """
import json, sys
from typer.testing import CliRunner
from llenergymeasure.cli.app import app
codes = [CliRunner().invoke(app, args).exit_code for args in json.loads(sys.argv[1])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "pyarrow", "pynvml"))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_status_dry_run_export_and_validate_import_no_torch(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor()).run()
    commands = [
        ["campaign", "status", str(out)],
        ["campaign", "status", str(out), "--json"],
        ["campaign", "run", str(file), "-o", str(tmp_path / "new"), "--dry-run"],
        ["results", "export", str(out), "--format", "csv", "--format", "json"],
        ["campaign", "validate", str(file)],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 0, 0, 0], "heavy": []}
    assert not (tmp_path / "new").exists()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


def test_status_lists_counts_failures_and_last_update(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor(fail={"pytorch_tiny-gpt2_out6"})).run()
    result = invoke("campaign", "status", out)
    assert result.exit_code == 0, result.output
    assert "completed_with_failures, 2/4 completed" in result.output
    assert "last update" in result.output
    assert "pytorch_tiny-gpt2_out6_c1 (failed): boom in pytorch_tiny-gpt2_out6_c1" in result.output
    data = json.loads(invoke("campaign", "status", out, "--json").output)
    assert data["counts"]["failed"] == 2 and data["counts"]["completed"] == 2
    assert [f["exp_id"] for f in data["failures"]] == [
        "pytorch_tiny-gpt2_out6_c1",
        "pytorch_tiny-gpt2_out6_c2",
    ]


def test_status_of_a_directory_without_a_manifest_exits_2(tmp_path: Path) -> None:
    result = invoke("campaign", "status", tmp_path)
    assert result.exit_code == 2
    assert "no campaign manifest" in result.output


def test_status_says_when_the_process_that_ran_it_is_gone(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out), FakeExecutor()).run()
    data = json.loads((out / "manifest.json").read_text())
    data["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(data))
    result = invoke("campaign", "status", out)
    assert "the process that ran it stopped; continue with --resume" in result.output


def test_export_of_a_folder_of_llem_run_results_and_bad_formats(tmp_path: Path) -> None:
    from .helpers import make_result

    make_result("r1", "a", "a" * 64).save(tmp_path / "r1")
    ok = invoke("results", "export", tmp_path, "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "summary.json").is_file()
    bad = invoke("results", "export", tmp_path, "--format", "xlsx")
    assert bad.exit_code == 1 and "unknown export format" in bad.output
    empty = invoke("results", "export", tmp_path / "r1")
    assert empty.exit_code == 1 and "no results" in empty.output


def test_dry_run_of_a_resume_shows_only_what_is_left_and_the_estimate(tmp_path: Path) -> None:
    file, out = (
        campaign_yaml(tmp_path / "c.yaml", extra="  config_gap_seconds: 3\n"),
        tmp_path / "out",
    )
    runner(prepare(file, out), FakeExecutor(interrupt={"pytorch_tiny-gpt2_out6_c2"})).run()
    result = invoke("campaign", "run", file, "-o", out, "--resume", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 run(s) to do" in result.output and "3 already completed" in result.output
    assert "estimated duration: about 1 s (earlier timings" in result.output
    assert "pytorch_tiny-gpt2_out6_c2" in result.output
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"  # untouched
