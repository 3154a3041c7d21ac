"""``llem results``: tables from a campaign directory (or any folder of results)."""

# No `from __future__ import annotations`: Typer reads every command's annotations on each
# start (llem --help included), and a string annotation is compiled before it is evaluated.
from pathlib import Path
from typing import Any

import typer

from llenergymeasure.cli.render import err, escape, new_table, out, print_json

app = typer.Typer(
    rich_markup_mode=None, help="Results: summaries, exports and comparisons.", no_args_is_help=True
)

CI_METHOD_HELP = (
    "student_t (default: mean +/- t s/sqrt(n)) or bootstrap (BCa, from 30 usable cycles; "
    "below that Student-t, said so in the row)."
)


def load_records(directory: Path) -> tuple[list[Any], int]:
    """The records of a campaign directory (its manifest) or of a folder of results, and the
    seed for any resampling; a user error when there are none."""
    from llenergymeasure.exceptions import LLEMError
    from llenergymeasure.orchestration.campaign.manifest import ManifestDamaged, load_manifest
    from llenergymeasure.orchestration.campaign.records import campaign_records
    from llenergymeasure.results.export import records_from_folder

    directory = directory.expanduser()
    if not directory.is_dir():
        raise LLEMError(
            f"no such directory: {directory}", fix="give a campaign or results directory"
        )
    try:
        manifest = load_manifest(directory)
    except ManifestDamaged as error:
        err.print(f"[yellow]warning:[/] {escape(error.what)}: reading the result files instead")
        manifest = None
    if manifest is not None:
        records, seed = campaign_records(directory, manifest), manifest.seed
    else:
        records, seed = records_from_folder(directory), 0
    if not records:
        raise LLEMError(
            f"no results in {directory}",
            fix="give a directory written by `llem campaign run` or `llem run -o`",
        )
    return records, seed


def campaign_execution(directory: Path) -> Any:
    """The execution settings a campaign's manifest recorded (adaptive cycles decide which
    interval its tables report), or None for a folder of results, an older manifest or a
    damaged one (which load_records has already warned about)."""
    from llenergymeasure.orchestration.campaign.manifest import ManifestDamaged, load_manifest

    try:
        manifest = load_manifest(directory.expanduser())
    except ManifestDamaged:
        return None
    return None if manifest is None else manifest.execution_config()


def _check_ci_method(ci_method: str) -> Any:
    from llenergymeasure.exceptions import LLEMError

    if ci_method not in ("student_t", "bootstrap"):
        raise LLEMError(f"unknown --ci-method {ci_method!r}", fix="use student_t or bootstrap")
    return ci_method


@app.command("export")
def export(
    directory: Path = typer.Argument(..., help="Campaign directory, or a folder of results."),
    formats: list[str] = typer.Option(
        ["csv"],
        "--format",
        "-f",
        help="csv, parquet or json; repeat for several.",
    ),
    ci_method: str = typer.Option("student_t", "--ci-method", help=CI_METHOD_HELP),
) -> None:
    """Write summary.<fmt> (a row per config: mean, std, CV, 95% CI across cycles) and
    experiments.<fmt> (a row per experiment-cycle) into DIR (json: one summary.json).

    Example: llem results export results/sweep --format csv --format parquet

    Energy columns carry energy_source, energy_method and energy_is_estimate. Without a
    manifest, every DIR/*/result.json counts (one cycle per run of the same config).
    """
    from llenergymeasure.exceptions import LLEMError, UnavailableError
    from llenergymeasure.orchestration.campaign.records import MISSING_RESULT
    from llenergymeasure.results.export import (
        FORMATS,
        PARQUET_HINT,
        parquet_available,
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
    method = _check_ci_method(ci_method)
    records, seed = load_records(directory)
    missing = [r for r in records if r.status == MISSING_RESULT]
    report = write_tables(
        directory,
        records,
        formats=formats,
        seed=seed,
        ci_method=method,
        execution=campaign_execution(directory),
    )
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if report.low_cycles:
        out.print(f"[yellow]warning:[/] {escape(report.low_cycles)}")
    if any(s.energy_is_estimate for s in report.summaries):
        out.print("[yellow]note:[/] some energy figures are ESTIMATES (column energy_is_estimate)")
    out.print(f"{len(report.summaries)} config(s), {report.experiments} experiment-cycle(s)")
    for path in report.paths:
        out.print(f"wrote {escape(str(path))}")
    if missing:
        err.print(
            f"[bold red]error:[/] {len(missing)} run(s) recorded as completed have no usable "
            "result and are left out of the tables:"
        )
        for record in missing:
            err.print(f"  {escape(record.exp_id)}: {escape(record.error or '')}")
        raise typer.Exit(1)


def _render_comparison(comparison: Any) -> None:

    a, b = comparison.a_name, comparison.b_name
    table = new_table(title=f"B: {escape(b)}  vs  A: {escape(a)}  (95% Welch-t intervals)")
    for column in ("metric", "A mean", "B mean", "B - A  [95% CI]", "as % of A"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metrics:
        w = m.welch
        table.add_row(
            m.metric.label,
            "-" if m.a_mean is None else f"{m.a_mean:.4g} (n={m.n_a})",
            "-" if m.b_mean is None else f"{m.b_mean:.4g} (n={m.n_b})",
            "-" if w is None else f"{w.difference:+.4g}  [{w.ci_low:.4g}, {w.ci_high:.4g}]",
            "-" if m.pct is None else f"{m.pct:+.1f}% ± {m.pct_half_width:.1f}%",
        )
    out.print(table)
    for m in comparison.metrics:
        out.print(f"  {escape(m.sentence)}")


def _interval(row: dict[str, Any]) -> str:
    mean, low, high = row["mean"], row["ci95_low"], row["ci95_high"]
    if mean is None:
        return "-"
    if low is None or high is None:
        return f"{mean:.4g} (n={row['n']}, no CI)"
    return f"{mean:.4g} [{low:.4g}, {high:.4g}]"


def _render_ranking(rows: list[dict[str, Any]], label: str) -> None:
    table = new_table(title=f"ranked by {escape(label)} (95% intervals)")
    for column in ("rank", "config", "mean [95% CI]", "vs best", "Holm p", "verdict"):
        table.add_column(column, justify="left" if column in ("config", "verdict") else "right")
    for row in rows:
        pct, half = row["pct_vs_best"], row["pct_half_width"]
        same = row["same_as_best"]
        verdict = (
            "best"
            if row["rank"] == 1
            else "no interval"
            if same is None
            else "same as best within noise"
            if same
            else "differs from best"
        )
        table.add_row(
            str(row["rank"]),
            escape(row["name"]),
            _interval(row),
            "-" if pct is None else f"{pct:+.1f}% ± {half:.1f}%",
            "-" if row["p_adjusted"] is None else f"{row['p_adjusted']:.2g}",
            verdict,
        )
    out.print(table)


@app.command("compare")
def compare(
    paths: list[str] = typer.Argument(
        ...,
        help="DIR [CONFIG_A CONFIG_B], or DIR_A DIR_B (two campaigns, e.g. two machines).",
    ),
    by: str = typer.Option(
        "energy_per_token_j",
        "--by",
        help="Without configs: the metric that picks the best config "
        "(energy_per_token_j, tokens_per_second or latency_p50_s).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable comparison on stdout."),
    detail: bool = typer.Option(
        False, "--detail", help="DIR alone: every config's comparison with the best in full."
    ),
) -> None:
    """Compare configurations: B - A in J/token, tokens/s and median latency, with a Welch-t
    95% interval on each difference and a plain sentence.

    Example: llem results compare results/sweep bs1 bs8
    ("bs8 uses 18% ± 4% less energy per token than bs1, 3 cycles each").

    DIR alone: one table ranking every config against the best one (lowest J/token; see --by),
    Holm-adjusted over the comparisons; --detail adds each comparison in full. DIR_A DIR_B: the
    same configs (by config hash) in two campaigns, B's against A's. Untrusted cycles are left
    out, as in summary.csv.
    """
    from llenergymeasure.exceptions import LLEMError
    from llenergymeasure.results.aggregation import aggregate
    from llenergymeasure.results.compare import (
        METRICS_BY_COLUMN,
        compare_configs,
        compare_to_best,
        find_config,
        pair_by_config,
        rank_against_best,
    )

    if by not in METRICS_BY_COLUMN:
        raise LLEMError(f"unknown --by {by!r}", fix=f"use one of {', '.join(METRICS_BY_COLUMN)}")
    if len(paths) not in (1, 2, 3):
        raise LLEMError(
            f"compare takes DIR, DIR CONFIG_A CONFIG_B or DIR_A DIR_B; got {len(paths)} arguments",
            fix="e.g. `llem results compare results/sweep bs1 bs8`",
        )
    data: dict[str, Any] = {}
    if len(paths) == 2:
        left_dir, right_dir = Path(paths[0]), Path(paths[1])
        if not (left_dir.is_dir() and right_dir.is_dir()):
            raise LLEMError(
                "two arguments are two campaign directories; "
                f"{paths[1] if left_dir.is_dir() else paths[0]!r} is not a directory",
                fix="to compare two configs of one campaign give three: DIR CONFIG_A CONFIG_B",
            )
        left = aggregate(load_records(left_dir)[0], execution=campaign_execution(left_dir))
        right = aggregate(load_records(right_dir)[0], execution=campaign_execution(right_dir))
        pairs, unpaired = pair_by_config(left, right)
        if not pairs:
            raise LLEMError(
                f"{left_dir} and {right_dir} share no config (no config hash in both)",
                fix="compare campaigns of the same grid, or give DIR CONFIG_A CONFIG_B",
            )
        comparisons = [
            compare_configs(a, b, a_name=f"{a.name} ({left_dir})", b_name=f"{b.name} ({right_dir})")
            for a, b in pairs
        ]
        data = {"mode": "two_campaigns", "unpaired": unpaired}
    else:
        directory = Path(paths[0])
        summaries = aggregate(load_records(directory)[0], execution=campaign_execution(directory))
        if len(paths) == 3:
            a = find_config(summaries, paths[1], str(directory))
            b = find_config(summaries, paths[2], str(directory))
            comparisons = [compare_configs(a, b)]
            data = {"mode": "two_configs"}
        else:
            if len(summaries) < 2:
                raise LLEMError(
                    f"{directory} holds one config; there is nothing to compare it with",
                    fix="give a second campaign directory: llem results compare DIR_A DIR_B",
                )
            best, comparisons = compare_to_best(summaries, by=by)
            ranking = rank_against_best(best, comparisons, by)
            data = {
                "mode": "against_best",
                "best": best.name,
                "by": by,
                "correction": "holm",
                "ranking": [r.to_json(by) for r in ranking],
            }
    if as_json:
        print_json({**data, "comparisons": [c.to_json() for c in comparisons]})
        return
    if data.get("mode") == "against_best":
        label = METRICS_BY_COLUMN[by].label
        out.print(
            f"best by {escape(label)}: [bold]{escape(data['best'])}[/]; a clear difference "
            f"needs a Holm-adjusted p < 0.05 over the {len(comparisons)} comparisons"
        )
        _render_ranking(data["ranking"], label)
        if not detail:
            return
    for comparison in comparisons:
        _render_comparison(comparison)
    for name in data.get("unpaired", []):
        out.print(f"[yellow]note:[/] {escape(name)} is in only one of the two campaigns")
