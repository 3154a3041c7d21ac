"""Tables of a campaign's results: a row per config (``summary.*``) and a row per
experiment-cycle (``experiments.*``), as CSV, Parquet or JSON, each written atomically.

Both tables carry the config beside each result (results/config_columns.py): the batching
key of each backend and every swept key under its dotted name, typed in Parquet.

Every energy column travels with ``energy_source``, ``energy_method`` and
``energy_is_estimate``, so an estimate is never mistaken for a measurement. Parquet needs
pyarrow (imported only here, only when asked); without it Parquet is skipped with a note.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.exceptions import LLEMError, UnavailableError
from llenergymeasure.files import write_atomic, write_bytes_atomic, write_json_atomic
from llenergymeasure.results.aggregation import (
    BOOTSTRAP_RESAMPLES,
    ConfigSummary,
    RunRecord,
    aggregate,
    low_cycles_note,
    summary_columns,
)
from llenergymeasure.results.config_columns import (
    config_cells,
    config_columns,
    flat_config,
    with_config_columns,
)
from llenergymeasure.results.experiment_rows import EXPERIMENT_COLUMNS, experiment_row
from llenergymeasure.results.schema import RESULT_FILE, load_result
from llenergymeasure.results.statistics import CIMethod

Format = Literal["csv", "parquet", "json"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "json")
PARQUET_HINT = "pip install 'llenergymeasure[parquet]'"


@dataclass
class ExportReport:
    """What was written, what was skipped and why, and the per-config summaries."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summaries: list[ConfigSummary] = field(default_factory=list)
    experiments: int = 0
    low_cycles: str | None = None
    """The sentence about configs with too few usable cycles (None: there are none)."""


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return value


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def parquet_available() -> bool:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def parquet_bytes(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], typed: Iterable[str] = ()
) -> bytes:
    """A Parquet file of the rows; UnavailableError naming the extra without pyarrow.
    ``typed`` columns get one type from their values (see ``_arrow_column``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UnavailableError(
            "Parquet export needs pyarrow, which is not installed", fix=PARQUET_HINT
        ) from None
    typed = set(typed)
    table = pa.table(
        {
            c: _arrow_column(pa, [row.get(c) for row in rows])
            if c in typed
            else [row.get(c) for row in rows]
            for c in columns
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _arrow_column(pa: Any, values: list[Any]) -> Any:
    """One nullable column: bool, int64, float64 (ints and floats mixed) or string (anything
    else as its text)."""
    present = [v for v in values if v is not None]
    if present and all(type(v) is bool for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(type(v) is int for v in present):
        return pa.array(values, type=pa.int64())
    if present and all(type(v) in (int, float) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_tables(
    directory: Path,
    records: Sequence[RunRecord],
    *,
    formats: Iterable[str] = ("csv", "parquet"),
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    ci_method: CIMethod = "student_t",
    extra: dict[str, dict[str, Any]] | None = None,
    execution: ExecutionConfig | None = None,
) -> ExportReport:
    """Write ``summary.<fmt>`` and ``experiments.<fmt>`` into ``directory`` for each format.

    ``extra``: config hash -> further summary columns (see ``ConfigSummary.extra``). A missing
    pyarrow skips Parquet with a note (it never fails the other formats). ``execution``: the
    campaign's execution settings (adaptive: the target metric's two-stage interval).
    """
    chosen = list(dict.fromkeys(formats))
    for fmt in chosen:
        if fmt not in FORMATS:
            raise LLEMError(
                f"unknown export format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}"
            )
    summaries = aggregate(
        records, seed=seed, resamples=resamples, ci_method=ci_method, execution=execution
    )
    low_cycles = low_cycles_note(summaries)
    for summary in summaries:
        summary.extra.update((extra or {}).get(summary.config_hash, {}))
    flat = {id(r): flat_config(r.result.config) for r in records if r.result is not None}
    by_hash = {r.config_hash: flat[id(r)] for r in records if id(r) in flat}
    taken = {*summary_columns(), *EXPERIMENT_COLUMNS}
    config = [c for c in config_columns(by_hash.values()) if c not in taken]
    summary_rows = [
        {**s.row(), **config_cells(by_hash.get(s.config_hash), config)} for s in summaries
    ]
    experiment_rows = [
        {**experiment_row(r), **config_cells(flat.get(id(r)), config)}
        for r in sorted(records, key=_order)
    ]
    scolumns = with_config_columns(summary_columns(), config)
    ecolumns = with_config_columns(EXPERIMENT_COLUMNS, config)
    report = ExportReport(
        summaries=summaries, experiments=len(experiment_rows), low_cycles=low_cycles
    )
    for fmt in chosen:
        if fmt == "csv":
            for name, columns, rows in (
                ("summary.csv", scolumns, summary_rows),
                ("experiments.csv", ecolumns, experiment_rows),
            ):
                write_atomic(directory / name, csv_text(columns, rows))
                report.paths.append(directory / name)
        elif fmt == "parquet":
            if not parquet_available():
                report.notes.append(f"Parquet skipped: pyarrow is not installed; {PARQUET_HINT}")
                continue
            for name, columns, rows in (
                ("summary.parquet", scolumns, summary_rows),
                ("experiments.parquet", ecolumns, experiment_rows),
            ):
                write_bytes_atomic(directory / name, parquet_bytes(columns, rows, config))
                report.paths.append(directory / name)
        else:
            data = {"configs": summary_rows, "experiments": experiment_rows}
            path = directory / "summary.json"
            write_json_atomic(path, data)
            report.paths.append(path)
    return report


def _order(record: RunRecord) -> tuple[int, str]:
    return (record.cycle, record.exp_id)


def records_from_folder(directory: Path) -> list[RunRecord]:
    """Records for a folder of results without a campaign manifest (e.g. ``llem run`` output).

    Every ``*/result.json`` one level down counts as completed; results of the same config
    are numbered as cycles in the order they started.
    """
    found = []
    for path in sorted(directory.glob(f"*/{RESULT_FILE}")):
        if path.parent.name.startswith("."):
            continue
        try:
            found.append((load_result(path), path))
        except LLEMError:
            continue
    found.sort(key=lambda item: (item[0].timings.started_at, item[0].experiment_id))
    cycles: dict[str, int] = {}
    records = []
    for result, path in found:
        cycle = cycles[result.config_hash] = cycles.get(result.config_hash, 0) + 1
        records.append(
            RunRecord(
                exp_id=result.experiment_id,
                name=result.name,
                config_hash=result.config_hash,
                backend=str(result.config.get("backend", "")),
                cycle=cycle,
                status="completed",
                result=result,
                result_path=str(path.relative_to(directory)),
            )
        )
    return records


__all__ = [
    "FORMATS",
    "PARQUET_HINT",
    "ExportReport",
    "csv_text",
    "parquet_available",
    "parquet_bytes",
    "records_from_folder",
    "write_tables",
]
