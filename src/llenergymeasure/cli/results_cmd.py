"""``llem results``: tables from a campaign directory (or any folder of results)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from llenergymeasure.cli.render import out

app = typer.Typer(help="Results: summaries and exports.", no_args_is_help=True)


@app.command("export")
def export(
    directory: Path = typer.Argument(..., help="Campaign directory, or a folder of results."),
    formats: list[str] = typer.Option(
        ["csv"],
        "--format",
        "-f",
        help="csv, parquet or json; repeat for several.",
    ),
) -> None:
    """Write summary.<fmt> (a row per config: mean, std, CV, 95% CI across cycles) and
    experiments.<fmt> (a row per experiment-cycle) into DIR (json: one summary.json).

    Example: [bold]llem results export results/sweep --format csv --format parquet[/]

    Energy columns carry energy_source, energy_method and energy_is_estimate. Without a
    manifest, every DIR/*/result.json counts (one cycle per run of the same config).
    """
    from llenergymeasure.exceptions import LLEMError, UnavailableError
    from llenergymeasure.orchestration.manifest import load_manifest
    from llenergymeasure.orchestration.runner import campaign_records
    from llenergymeasure.results.export import (
        FORMATS,
        PARQUET_HINT,
        parquet_available,
        records_from_folder,
        write_tables,
    )

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise LLEMError(
            f"unknown export format {unknown[0]!r}", fix=f"use one of {', '.join(FORMATS)}"
        )
    if "parquet" in formats and not parquet_available():
        raise UnavailableError(
            "Parquet export needs pyarrow, which is not installed", fix=PARQUET_HINT
        )
    if not directory.is_dir():
        raise LLEMError(
            f"no such directory: {directory}", fix="give a campaign or results directory"
        )
    manifest = load_manifest(directory)
    if manifest is not None:
        records, seed = campaign_records(directory, manifest), manifest.seed
    else:
        records, seed = records_from_folder(directory), 0
    if not records:
        raise LLEMError(
            f"no results in {directory}",
            fix="give a directory written by `llem campaign run` or `llem run -o`",
        )
    report = write_tables(directory, records, formats=formats, seed=seed)
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    low = sum(s.low_cycles for s in report.summaries)
    if low:
        out.print(
            f"[yellow]warning:[/] {low} of {len(report.summaries)} config(s) have fewer than 3 "
            "completed cycles: std, CV and CI are unreliable (column low_cycles)"
        )
    if any(s.energy_is_estimate for s in report.summaries):
        out.print("[yellow]note:[/] some energy figures are ESTIMATES (column energy_is_estimate)")
    out.print(f"{len(report.summaries)} config(s), {report.experiments} experiment-cycle(s)")
    for path in report.paths:
        out.print(f"wrote {escape(str(path))}")
