"""``llem report``: the HTML page and static figures of one or more result directories.

Reading a directory (manifest, result files, the campaign file for adaptive columns and
filtered configs) happens here, where every layer may be imported; ``llenergymeasure.report``
itself only draws what it is given.
"""

# No `from __future__ import annotations`: Typer reads every command's annotations on each
# start (llem --help included), and a string annotation is compiled before it is evaluated.
import difflib
from pathlib import Path
from typing import Any

import typer

from llenergymeasure.cli.render import escape, out
from llenergymeasure.cli.results_cmd import CI_METHOD_HELP, _check_ci_method, load_records

REPORT_FILE = "report.html"


def _campaign_file(directory: Path, manifest: Any) -> Path | None:
    if manifest is None or not manifest.campaign_file:
        return None
    path = Path(manifest.campaign_file).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return directory / path  # a relative path written from another working directory


def load_source(
    directory: Path,
    *,
    label: str | None = None,
    ci_method: str | None = None,
) -> Any:
    """A ``ReportSource`` for a campaign directory or a folder of ``llem run`` results.

    The execution settings, ci method and filtered configs come from what the manifest
    recorded, whatever the working directory; a manifest older than those fields has its
    campaign file read again when it is still there.
    """
    from llenergymeasure.orchestration.campaign.adaptive import summary_columns
    from llenergymeasure.orchestration.campaign.manifest import ManifestDamaged, load_manifest
    from llenergymeasure.report.source import ReportSource
    from llenergymeasure.results.aggregation import aggregate

    records, seed = load_records(directory)
    notes: list[str] = []
    try:
        manifest = load_manifest(directory)
    except ManifestDamaged:
        manifest = None
    execution, run_method = None, None
    filtered: list[tuple[str, str]] = []
    if manifest is not None and manifest.execution is not None:
        execution = manifest.execution_config()
        run_method, filtered = manifest.ci_method, list(manifest.filtered or [])
    elif manifest is not None:
        campaign, filtered, note = _read_campaign(_campaign_file(directory, manifest))
        if campaign is not None:
            execution, run_method = campaign.execution, campaign.statistics.ci_method
        if note:
            notes.append(note)
    method: Any = ci_method or run_method or "student_t"
    summaries = aggregate(records, seed=seed, ci_method=method, execution=execution)
    if execution is not None:
        extra = summary_columns(records, execution, ci_method=method, seed=seed)
        for summary in summaries:
            summary.extra.update(extra.get(summary.config_hash, {}))
    skipped = [
        (r.exp_id, f"skipped: {r.error or 'no reason recorded'}")
        for r in records
        if r.status == "skipped"
    ]
    facts: dict[str, Any] = {}
    if manifest is not None:
        facts = {
            "name": manifest.campaign_name,
            "status": manifest.status,
            "created_at": manifest.created_at,
            "cycles": manifest.cycles,
            "structure": manifest.structure,
            "executor": manifest.executor,
        }
    return ReportSource(
        label=label or directory.name or str(directory),
        directory=directory,
        records=records,
        summaries=summaries,
        ci_method=method,
        campaign=facts,
        filtered=filtered + skipped,
        notes=notes,
    )


def _read_campaign(path: Path | None) -> tuple[Any, list[tuple[str, str]], str | None]:
    """(campaign config, filtered configs, a note when the file cannot be used)."""
    from llenergymeasure.config.loader import load_campaign_config
    from llenergymeasure.exceptions import LLEMError
    from llenergymeasure.orchestration.campaign.experiments import plan_campaign

    if path is None:
        return None, [], "no campaign file recorded: filtered configs and adaptive columns unknown"
    try:
        campaign = load_campaign_config(path)
        grid = plan_campaign(campaign, path)
    except (LLEMError, OSError) as error:
        return (
            None,
            [],
            f"campaign file {path} could not be read ({error}): filtered configs and adaptive "
            "columns are not shown",
        )
    return campaign, grid.tally.filtered_examples(), None


def _labels(directories: list[Path]) -> list[str]:
    """Each campaign's name (from its manifest), else the directory name; the whole path
    where two labels clash. The page shows the path on hover."""
    from llenergymeasure.orchestration.campaign.manifest import ManifestDamaged, load_manifest

    names = []
    for directory in directories:
        try:
            manifest = load_manifest(directory)
        except (ManifestDamaged, OSError):
            manifest = None
        name = manifest.campaign_name if manifest is not None else None
        names.append(name or directory.name or str(directory))
    return [str(d) if names.count(n) > 1 else n for d, n in zip(directories, names, strict=True)]


def _check_power(sources: list[Any], power: list[str]) -> None:
    from llenergymeasure.exceptions import LLEMError
    from llenergymeasure.report.power_trace import series_records

    known = {r.exp_id for s in sources for r in s.records}
    with_series = {r.exp_id for s in sources for r in series_records(s)}
    for exp_id in power:
        if exp_id in with_series:
            continue
        if exp_id in known:
            raise LLEMError(
                f"--power {exp_id}: that experiment recorded no time series",
                fix="enable `timeseries: {enabled: true}` with a power-polling energy source, "
                f"or choose one of: {', '.join(sorted(with_series)[:5]) or '(none recorded)'}",
            )
        near = difflib.get_close_matches(exp_id, sorted(known), n=3)
        raise LLEMError(
            f"--power {exp_id}: no such experiment in the given directories",
            fix=(f"did you mean {' or '.join(near)}? " if near else "")
            + "give an exp_id as in experiments.csv",
        )


def _output(directories: list[Path], output: Path | None) -> Path:
    from llenergymeasure.exceptions import LLEMError
    from llenergymeasure.files import check_output_dir

    path = output or (directories[0] / REPORT_FILE if len(directories) == 1 else Path(REPORT_FILE))
    path = path.expanduser()
    if path.is_dir():
        raise LLEMError(
            f"-o {path} is a directory", fix=f"give a file name, e.g. -o {path / REPORT_FILE}"
        )
    if path.suffix.lower() not in (".html", ".htm"):
        raise LLEMError(f"-o {path}: the report is an HTML page", fix=f"use -o {path}.html")
    check_output_dir(path.parent, what="report directory")
    return path


def report(
    directories: list[Path] = typer.Argument(
        ...,
        help="Campaign directories or folders of `llem run` results (several: compared).",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help=f"The page (default: DIR/{REPORT_FILE} for one DIR, ./{REPORT_FILE} for several).",
    ),
    power: list[str] = typer.Option(
        [],
        "--power",
        help="An exp_id whose power over time to draw; repeat for several "
        "(default: up to 4 with a time series, lowest J/token first).",
    ),
    ci_method: str | None = typer.Option(
        None, "--ci-method", help=CI_METHOD_HELP + " Default: the campaign's own."
    ),
    figures_only: bool = typer.Option(
        False,
        "--figures-only",
        help="Write only the figure folder (SVG, PNG, 1- and 2-column SVG and PDF, CSV of "
        "each figure's data), no page.",
    ),
) -> None:
    """Write one self-contained HTML report (opens offline) and an SVG and PNG of every figure
    in <name>_figures/ beside it.

    Example: llem report results/sweep (then open results/sweep/report.html);
    llem report results/a100 results/h100 -o compare.html compares two machines.

    On the page: Pareto fronts of J/token against tokens/s and latency with 95% CIs, the
    effect of each swept parameter, power over time, energy accounting (idle baseline vs the
    rest), per-cycle variability, a sortable table of every config, and the provenance of every
    number (an estimate is marked ESTIMATE in red). Needs the report extra:
    pip install 'llenergymeasure[report]'.
    """
    from llenergymeasure.exceptions import LLEMError, UnavailableError
    from llenergymeasure.report import static

    if not static.available():
        raise UnavailableError(
            "llem report needs vl-convert-python (the 'report' extra), which is not installed",
            fix=static.REPORT_HINT,
        )
    method = _check_ci_method(ci_method) if ci_method is not None else None
    folders = [d.expanduser() for d in directories]
    if len(set(map(Path.resolve, folders))) < len(folders):
        raise LLEMError("the same directory is given twice", fix="give each directory once")
    for folder in folders:
        if not folder.is_dir():
            raise LLEMError(
                f"no such directory: {folder}", fix="give a campaign or results directory"
            )
    path = _output(folders, output)
    sources = [
        load_source(d, label=label, ci_method=method)
        for d, label in zip(folders, _labels(folders), strict=True)
    ]
    _check_power(sources, power)
    from llenergymeasure.report.build import write_report

    try:
        outcome = write_report(sources, path, power=power, figures_only=figures_only)
    except OSError as error:
        raise LLEMError(
            f"the report could not be written to {path}: {error.strerror or error}",
            fix="free disk space or choose another place with -o",
        ) from None
    for note in outcome.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    figures = sum(p.suffix == ".csv" for p in outcome.figures)
    out.print(f"{outcome.configs} config(s), {figures} figure(s) in {outcome.seconds:.1f} s")
    if not figures_only:
        out.print(f"wrote {escape(str(path))}")
    if outcome.figures:
        out.print(
            f"wrote {escape(str(outcome.figures[0].parent))}/ (each figure as SVG and PNG, "
            "1- and 2-column SVG and PDF, and its data as CSV)"
        )


def campaign_report(directory: Path, outcome: Any) -> None:
    """After ``llem campaign run``: write DIR/report.html, listed with the campaign's exports,
    from what the directory holds (as ``llem report DIR`` does: the manifest records the
    execution settings, ci method and filtered configs).

    A missing extra or any failure here is a note on the outcome; the measurements are done and
    the campaign's result never depends on its report.
    """
    from llenergymeasure.report import static

    if outcome.status == "interrupted":
        outcome.notes.append(f"{REPORT_FILE} not refreshed (interrupted); --resume writes it")
        return
    if not static.available():
        outcome.notes.append(
            f"{REPORT_FILE} not written: the report extra is not installed ({static.REPORT_HINT})"
        )
        return
    try:
        from llenergymeasure.report.build import write_report

        source = load_source(directory)
        written = write_report([source], directory / REPORT_FILE)
    except KeyboardInterrupt:  # Ctrl-C while drawing: the campaign itself is done
        outcome.notes.append(
            f"{REPORT_FILE} not written (interrupted); `llem report DIR` writes it"
        )
        return
    except Exception as error:  # never fail a finished campaign over its report
        outcome.notes.append(f"{REPORT_FILE} not written: {type(error).__name__}: {error}")
        return
    outcome.exports.append(written.html)


__all__ = ["REPORT_FILE", "campaign_report", "load_source", "report"]
