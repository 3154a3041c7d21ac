"""Reading a campaign directory for the report: manifest facts, adaptive-cycle columns and the
configs the grid filtered out, from the campaign file the manifest names."""

from __future__ import annotations

from pathlib import Path

from campaign.helpers import TINY_BASE, prepare
from campaign.test_adaptive import ScriptedExecutor
from campaign.test_runner import runner
from llenergymeasure.cli.report_cmd import load_source
from llenergymeasure.report import data as D
from llenergymeasure.report.table import config_table

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


def test_a_moved_campaign_file_is_a_note_not_an_error(tmp_path: Path) -> None:
    file, out = tmp_path / "c.yaml", tmp_path / "out"
    file.write_text("campaign_name: moved\n" + TINY_BASE + GRID, encoding="utf-8")
    runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    file.unlink()
    source = load_source(out)
    assert source.filtered == [] and "could not be read" in source.notes[0]
    assert all(s.extra == {} for s in source.summaries)
