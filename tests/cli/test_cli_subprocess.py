"""The real `llem` console script in a fresh process, and what the CLI imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import EXAMPLES, REPO

WriteYaml = Callable[..., Path]


def _llem() -> str:
    beside = Path(sys.executable).parent / "llem"
    if beside.exists():
        return str(beside)
    found = shutil.which("llem")
    if found is None:
        pytest.skip("the llem console script is not installed")
    return found


def _run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [_llem(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_console_script_validates_the_example_campaign() -> None:
    proc = _run("campaign", "validate", "examples/campaign.yaml", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["total_generated"] == 68
    assert data["valid"] + data["filtered"] + data["duplicates"] == data["total_generated"]
    assert data["valid"] == len(data["experiments"]) > 0
    assert proc.stderr == ""


def test_console_script_unusable_file_exits_2_with_one_message(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          backends: [pytorch]
          backend_overrides:
            pytorch:
              batch_sise: [1, 4]
        """,
        "typo.yaml",
    )
    proc = _run("campaign", "validate", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert f"{path}:7" in proc.stderr
    assert "grid.backend_overrides.pytorch.batch_sise" in proc.stderr
    assert "did you mean 'batch_size'" in proc.stderr


def test_console_script_config_commands(tmp_path: Path) -> None:
    params = _run("config", "params", "--backend", "vllm")
    assert params.returncode == 0
    assert "max_num_seqs" in params.stdout
    bad = _run("config", "params", "--backend", "onnx")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    valid = _run("config", "validate", EXAMPLES / "experiment.yaml")
    assert valid.returncode == 0
    version = _run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("llem ")


def test_cli_never_imports_heavy_libraries() -> None:
    script = f"""
import sys
from typer.testing import CliRunner
import llenergymeasure.cli.app as cli
heavy = ("torch", "transformers", "pynvml", "vllm", "tensorrt_llm")
assert not [m for m in heavy if m in sys.modules], "on import"
runner = CliRunner()
for args in (
    ["campaign", "validate", {str(EXAMPLES / "campaign.yaml")!r}, "--json"],
    ["campaign", "validate", {str(EXAMPLES / "campaign.yaml")!r}, "--list"],
    ["config", "validate", {str(EXAMPLES / "experiment.yaml")!r}],
    ["config", "params"],
    ["config", "schema", "campaign"],
    ["--help"],
):
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, (args, result.output)
loaded = [m for m in heavy if m in sys.modules]
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_exact_import_check_from_the_brief() -> None:
    code = (
        "import llenergymeasure.cli.app, sys; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules "
        "and 'pynvml' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
