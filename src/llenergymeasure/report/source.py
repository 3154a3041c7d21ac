"""What a report is made from: one directory's records and summaries, already aggregated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llenergymeasure.results.aggregation import ConfigSummary, RunRecord


@dataclass
class ReportSource:
    """One campaign directory (or folder of ``llem run`` results) as the report sees it.

    Whoever reads the directory (the CLI) fills it: ``summaries`` come from
    ``results.aggregation.aggregate`` of ``records`` (untrusted cycles already left out) with
    any adaptive-cycle columns in ``extra``; the report never recomputes statistics.
    """

    label: str
    directory: Path
    records: list[RunRecord]
    summaries: list[ConfigSummary]
    ci_method: str = "student_t"
    campaign: dict[str, Any] = field(default_factory=dict)
    """Manifest facts worth printing: name, status, cycles, structure, executor, created_at."""
    filtered: list[tuple[str, str]] = field(default_factory=list)
    """Grid points filtered as invalid before anything ran: (config, reason)."""
    notes: list[str] = field(default_factory=list)
    """What could not be read (campaign file gone, damaged manifest), for the page."""


__all__ = ["ReportSource"]
