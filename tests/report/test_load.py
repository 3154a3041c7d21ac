"""Reading a campaign directory for the report: manifest facts, adaptive-cycle columns and the
configs the grid filtered out, from what the manifest recorded (older manifests: the campaign
file it names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.cli.report_cmd import load_source
from llenergymeasure.orchestration.campaign.manifest import MANIFEST_FILE, load_manifest
from llenergymeasure.report import data as D
from llenergymeasure.report.table import config_table
from orchestration.campaign.helpers import TINY_BASE, prepare
from orchestration.campaign.test_adaptive import ScriptedExecutor
from orchestration.campaign.test_runner import runner

GRID = """\
grid:
  backends: [pytorch]
  shared:
    max_output_tokens: [4, 6]
  backend_overrides:
    pytorch:
      attn_implementation: [sdpa, flash_attention_2]
execution:
  cycles: 3
  target_ci_pct: 5
  max_cycles: 5
"""


def test_a_campaign_directory_brings_adaptive_columns_and_filtered_configs(
    tmp_path: Path,
) -> None:
    file, out = tmp_path / "c.yaml", tmp_path / "out"
    file.write_text("campaign_name: adaptive-report\n" + TINY_BASE + GRID, encoding="utf-8")
    outcome = runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    assert outcome.status == "completed"

    source = load_source(out)
    assert source.campaign["name"] == "adaptive-report" and source.campaign["cycles"] == 3
    assert len(source.filtered) == 2
    assert all("attnflash-attention-2" in config for config, _ in source.filtered)
    assert all("needs fp_precision float16 or bfloat16" in reason for _, reason in source.filtered)
    converged = {s.name: s.extra.get("converged") for s in source.summaries}
    # the scripted energy swings +/- 30% for these names: neither converges within 5 cycles
    assert converged == dict.fromkeys(converged, False) and len(converged) == 2
    assert all(s.cycles_used == 5 for s in source.summaries)
    points, varied = D.config_points([source])
    table = config_table(points, varied)
    assert table.count("no: max_cycles (5) reached and the 95% CI of J/token is") == 2
    assert source.notes == []


def test_the_manifest_alone_brings_them_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign file gone and the report run from /: the manifest recorded the filtered
    configs and the execution settings, so nothing is re-planned and nothing is missing."""
    file, out = tmp_path / "c.yaml", tmp_path / "out"
    file.write_text("campaign_name: moved\n" + TINY_BASE + GRID, encoding="utf-8")
    runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    manifest = load_manifest(out)
    assert manifest is not None and manifest.campaign_file == str(file.resolve())
    file.unlink()
    monkeypatch.chdir("/")
    source = load_source(out)
    assert source.notes == []
    assert len(source.filtered) == 2
    assert all(s.extra.get("converged") is False for s in source.summaries)


def test_an_older_manifest_without_a_campaign_file_is_a_note_not_an_error(
    tmp_path: Path,
) -> None:
    file, out = tmp_path / "c.yaml", tmp_path / "out"
    file.write_text("campaign_name: moved\n" + TINY_BASE + GRID, encoding="utf-8")
    runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    path = out / MANIFEST_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("filtered", "execution", "ci_method"):
        del data[key]  # as written before these fields were recorded
    path.write_text(json.dumps(data), encoding="utf-8")
    file.unlink()
    source = load_source(out)
    assert source.filtered == [] and "could not be read" in source.notes[0]
    assert all(s.extra == {} for s in source.summaries)


def test_recorded_settings_that_no_longer_validate_are_damage_with_their_key(
    tmp_path: Path,
) -> None:
    """A hand-edited (or newer) manifest whose execution settings do not validate: report and
    export read the result files with a warning naming the key, never a traceback."""
    from typer.testing import CliRunner

    from llenergymeasure.cli.app import app

    file, out = tmp_path / "c.yaml", tmp_path / "out"
    file.write_text("campaign_name: edited\n" + TINY_BASE + GRID, encoding="utf-8")
    runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    path = out / MANIFEST_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["execution"]["cycles"] = "many"
    path.write_text(json.dumps(data), encoding="utf-8")
    (out / "manifest.journal").unlink(missing_ok=True)
    for command in (["results", "export", str(out)], ["report", str(out)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output and result.exception is None
        assert "execution" in result.output and "cycles" in result.output
