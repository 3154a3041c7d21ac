"""Campaign output without a terminal: one plain line per finished run with its count, time
and ETA, no Rich live line left behind, and names never cut (the dry run's order included)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from llenergymeasure.cli.progress import PlainProgress, short_duration

from .helpers import EXAMPLES, invoke

LONG = "pytorch_tiny-gpt2_fp16_temp0.0_nosample_bs4_attnflash-attention-2"


def _entry(exp_id: str, status: str = "completed", error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(exp_id=exp_id, status=status, error=error, name=exp_id)


def test_each_finished_run_is_one_line_with_count_time_and_eta() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.on_start(None, 3)
    first, second = _entry(f"{LONG}_c1"), _entry("b_c1", "failed", "RuntimeError: out of memory")
    progress.on_experiment_start(1, 3, first, None)
    progress.on_wait("gap", 5.0)
    progress.on_experiment_end(1, 3, first, 245.0)
    progress.on_experiment_start(2, 3, second, 120.0)
    progress.on_experiment_end(2, 3, second, 61.0)
    progress.on_experiment_end(3, 3, _entry("c_c1"), 0.0)  # adopted from an earlier run
    lines = stream.getvalue().splitlines()
    assert lines[0] == "3 run(s) to do"
    assert lines[1].startswith(f"[1/3] {LONG}_c1 ok ") and lines[1].endswith(" s ETA 4m05s")
    assert lines[2].startswith("[2/3] b_c1 FAILED ") and "ETA 1m01s: " in lines[2]
    assert "out of memory" in lines[2]
    assert lines[3] == "[3/3] c_c1 ok (already done)"  # no ETA after the last
    assert len(lines) == 4


def test_short_durations() -> None:
    assert [short_duration(s) for s in (0, 59.9, 245, 7620)] == ["0s", "59s", "4m05s", "2h07m"]


def test_the_dry_run_order_keeps_every_name_whole_without_a_terminal(tmp_path: Path) -> None:
    result = invoke(
        "campaign", "run", EXAMPLES / "campaign.yaml", "-o", tmp_path / "o", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    order = result.stdout[result.stdout.index("Run order") :]
    assert "…" not in order and "..." not in order.split("... and")[0]
    rows = [
        line.split()
        for line in order.splitlines()[1:]
        if line.startswith("  ") and "more" not in line
    ]
    assert rows and all(row[1] == f"{row[4]}_c{row[2]}" for row in rows)  # exp_id = name + cycle


def test_a_campaign_without_a_terminal_gets_plain_lines() -> None:
    from llenergymeasure.cli.progress import campaign_observer

    assert isinstance(campaign_observer(), PlainProgress)  # pytest's stderr is not a terminal
