"""``llem campaign``: validate a campaign grid, show its plan, run it (``status`` in its own room)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer

from llenergymeasure.cli.campaign_status import status
from llenergymeasure.cli.progress import campaign_observer
from llenergymeasure.cli.render import (
    err,
    escape,
    new_table,
    out,
    print_json_stream,
    print_lines,
)

app = typer.Typer(
    rich_markup_mode=None,
    help="Campaigns: grids of experiments run in cycles.",
    no_args_is_help=True,
)


def _plan(file: Path, on_issue: Any = None) -> tuple[Any, Any]:
    from llenergymeasure.orchestration.campaign.experiments import load_and_plan

    return load_and_plan(file, on_issue=on_issue)


def _print_title(campaign: Any, file: Path) -> None:
    """The campaign's name and file, printed as text (never read as markup)."""
    from rich.text import Text

    out.print(Text.assemble((campaign.campaign_name, "bold"), f" ({file})"))


def runs_summary(execution: Any, experiments: int) -> dict[str, Any]:
    """runs = experiments x cycles (adaptive: x min_cycles first, at most x max_cycles)."""
    data: dict[str, Any] = {
        "cycles": execution.first_cycles,
        "runs": experiments * execution.first_cycles,
    }
    if execution.adaptive:
        data.update(
            adaptive=True,
            target_ci_pct=execution.target_ci_pct,
            target_metric=execution.target_metric,
            min_cycles=execution.first_cycles,
            max_cycles=execution.cycle_limit,
            max_runs=experiments * execution.cycle_limit,
        )
    return data


def plural(count: int, noun: str) -> str:
    """``1 experiment``, ``2 experiments``, ``1,200 runs``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def runs_text(execution: Any, experiments: int) -> str:
    data = runs_summary(execution, experiments)
    text = (
        f"{plural(data['runs'], 'run')} = {plural(experiments, 'experiment')} x "
        f"{plural(data['cycles'], 'cycle')}"
    )
    if execution.adaptive:
        text += (
            f", then more cycles only for configs whose 95% CI of {data['target_metric']} is "
            f"wider than +/- {data['target_ci_pct']:g}%, up to {data['max_cycles']} cycles "
            f"({data['max_runs']} runs at most)"
        )
    return text


LARGE_CAMPAIGN = 100_000
"""Valid experiments above which ``validate`` warns about the campaign's size."""
ASSUMED_RUN_S = 10.0
"""An assumed time per run for the size warning (a small model's load, warmup and window):
an assumption, said as one, never a measurement."""


def large_campaign_warning(campaign: Any, grid: Any) -> str | None:
    """For a campaign of more than ``LARGE_CAMPAIGN`` experiments: how long it would take."""
    if grid.valid <= LARGE_CAMPAIGN:
        return None
    from llenergymeasure.orchestration.campaign.plan import (
        NewRuns,
        duration_text,
        planned_experiments,
    )

    execution = campaign.execution
    estimate = NewRuns(planned_experiments(grid), execution).estimate()
    floor = estimate.gaps_s + estimate.baselines_s
    return (
        f"{grid.valid:,} experiments x {execution.first_cycles} cycle(s) = {estimate.runs:,} runs "
        f"is a very large campaign: configured gaps and idle baselines alone take "
        f"{duration_text(floor)}; at an assumed {ASSUMED_RUN_S:g} s per run it would take about "
        f"{duration_text(floor + estimate.runs * ASSUMED_RUN_S)}. `llem campaign run` refuses "
        f"more than execution.max_experiments ({execution.max_experiments:,}) without "
        "--allow-large; fix: narrow the grid (fewer values per axis, grid.exclude, linked axes)"
    )


def _print_json_plan(campaign: Any, grid: Any, spool: dict[str, Any]) -> None:
    """The ``--json`` summary, its long lists streamed (issues from their spool files)."""
    import json

    tally, kept = grid.tally, grid.kept
    head = {
        "campaign_name": campaign.campaign_name,
        "total_generated": tally.total,
        "valid": grid.valid,
        "excluded": tally.excluded_count,
        "filtered": tally.count("filtered"),
        "duplicates": tally.count("duplicates"),
        "warnings": tally.count("warned"),
        **runs_summary(campaign.execution, grid.valid),
        "summary": tally.summary,
        "per_backend": tally.per_backend,
        "filtered_reasons": [{"rule": r, "count": n} for r, n in tally.grouped_reasons()],
        "excluded_rules": [{"rule": r, "count": n} for r, n in tally.excluded.items()],
        "notes": tally.notes,
        "backend_requirements": tally.backend_requirements,
        "large_campaign_warning": large_campaign_warning(campaign, grid),
    }

    def spooled(kind: str) -> Any:
        file = spool[kind]
        file.seek(0)
        return map(json.loads, file)

    print_json_stream(
        head,
        {
            "experiments": (
                {
                    "name": kept.name(i),
                    "backend": kept.info(i).backend,
                    "config_hash": kept.digest(i),
                }
                for i in range(len(kept))
            ),
            "filtered_configs": spooled("filtered"),
            "duplicate_configs": spooled("duplicates"),
            "warning_configs": spooled("warned"),
        },
    )


def render_plan(grid: Any, *, list_names: bool) -> None:
    """Per-backend counts, grouped reasons, requirements, warnings and the summary line; the
    experiments' names (``list_names``) are printed one by one from the compact store."""
    tally = grid.tally
    table = new_table(title="Experiments per backend")
    kinds = ["valid", "excluded", "filtered", "duplicates", "warned"]
    if not tally.excluded:
        kinds.remove("excluded")  # a grid without exclude entries keeps its familiar table
    for column in ("backend", *kinds):
        table.add_column(
            "hardware warnings" if column == "warned" else column,
            justify="left" if column == "backend" else "right",
        )
    for backend, row in tally.per_backend.items():
        table.add_row(backend, *(str(row[k]) for k in kinds))
    out.print(table)
    if tally.excluded:
        out.print("[bold]Excluded[/] (grid.exclude, before validation)")
        for rule, count in tally.excluded.items():
            out.print(f"  [dim]x {count}[/] {escape(rule)}")
    if tally.rules:
        out.print("[bold]Filtered as invalid[/]")
        for rule, count in tally.grouped_reasons():
            example = tally.first_of_rule[rule]
            out.print(f"  [red]x {count}[/] {escape(rule)}")
            out.print(f"      e.g. {escape(example.config_desc)}: {escape(example.reason)}")
    for note in [*tally.backend_requirements.values(), *tally.notes]:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if tally.warning_reasons:
        out.print("[bold]Hardware warnings[/] (kept; may fail at run time)")
        for reason, count in tally.warning_reasons.most_common():
            out.print(f"  [yellow]x {count}[/] {escape(reason)}")
    if list_names:
        out.print("[bold]Experiments[/]")
        kept = grid.kept
        print_lines(f"  {kept.name(i)}  {kept.digest(i)[:12]}" for i in range(len(kept)))
    out.print(escape(tally.summary))


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Campaign YAML."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
    list_names: bool = typer.Option(False, "--list", help="List the valid experiments' names."),
) -> None:
    """Expand a campaign's grid and dry-run validate every experiment (no GPU needed).

    Example: llem campaign validate examples/campaign.yaml --list

    Exit 0 when at least one experiment is valid, 1 when none is, 2 when the file is unusable.
    """
    if as_json:
        import tempfile

        from llenergymeasure.orchestration.grid_tally import KINDS

        with contextlib.ExitStack() as stack:
            spool: dict[str, Any] = {
                kind: stack.enter_context(tempfile.TemporaryFile("w+")) for kind in KINDS
            }

            def keep(kind: str, issue: Any) -> None:
                spool[kind].write(issue.model_dump_json() + "\n")

            campaign, grid = _plan(file, on_issue=keep)
            _print_json_plan(campaign, grid, spool)
    else:
        campaign, grid = _plan(file)
        _print_title(campaign, file)
        if grid.valid:
            out.print(escape(runs_text(campaign.execution, grid.valid)))
        warning = large_campaign_warning(campaign, grid)
        if warning:
            out.print(f"[bold yellow]warning:[/] {escape(warning)}")
        render_plan(grid, list_names=list_names)
    if not grid.valid:
        raise typer.Exit(1)


# --- run -----------------------------------------------------------------------------------------

PLAN_ROWS_SHOWN = 60


def _render_order(plan: Any) -> None:
    """The first runs in order; names whole: plain lines where stdout is not a terminal (a
    Rich table there is cut to 80 columns), folded, never cut, in a terminal's table."""
    runs, entries = plan.runs, plan.preview(PLAN_ROWS_SHOWN)
    if not out.is_terminal:
        out.print(f"Run order ({runs} runs): # exp_id cycle backend name", markup=False)
        print_lines(
            f"  {index} {entry.exp_id} {entry.cycle} {entry.backend} {entry.name}"
            for index, entry in enumerate(entries, 1)
        )
        if runs > len(entries):
            out.print(f"  ... and {runs - len(entries)} more")
        return
    table = new_table(title=f"Run order ({runs} runs)")
    for column in ("#", "exp_id", "cycle", "backend", "name"):
        table.add_column(
            column,
            justify="right" if column in ("#", "cycle") else "left",
            overflow="fold" if column in ("exp_id", "name") else "ellipsis",
        )
    for index, entry in enumerate(entries, 1):
        table.add_row(
            str(index), escape(entry.exp_id), str(entry.cycle), entry.backend, escape(entry.name)
        )
    out.print(table)
    if runs > len(entries):
        out.print(f"  ... and {runs - len(entries)} more")


def _render_header(plan: Any, *, dry_run: bool) -> None:
    from llenergymeasure.orchestration.campaign.manifest import PREVIOUS_PREFIX

    execution = plan.campaign.execution
    experiments, runs = len(plan.experiments), plan.runs
    if plan.change.changed:
        out.print("[bold yellow]The campaign file changed since this run started:[/]")
        for line in plan.change.lines():
            out.print(f"  - {escape(line)}")
    for note in plan.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if plan.move_aside:
        verb = "would move" if dry_run else "will move"
        out.print(
            f"--fresh {verb} the existing contents of {escape(str(plan.output_dir))} to "
            f"{escape(str(plan.output_dir / (PREVIOUS_PREFIX + '<time>')))}/ (nothing is deleted)"
        )
    done = f", {plan.completed} already completed" if plan.completed else ""
    out.print(
        f"[bold]{runs} run(s)[/] to do ({plural(experiments, 'experiment')} x "
        f"{plural(execution.first_cycles, 'cycle')}{' first' if execution.adaptive else ''}, "
        f"{execution.structure}{done}); executor {plan.executor}, model reuse "
        f"{'on' if plan.reuse_models else 'off'}"
    )
    out.print(f"estimated duration: {escape(plan.estimate().text())}")
    out.print(f"results: {escape(str(plan.output_dir))}")


def _render_headline(directory: Path) -> None:
    """The best configs and the Pareto set; a failure to read them never fails the run."""
    from llenergymeasure.cli.headline import render_headline
    from llenergymeasure.exceptions import LLEMError

    try:
        render_headline(directory)
    except (LLEMError, OSError) as error:
        err.print(f"[yellow]note:[/] no headline numbers: {escape(str(error))}")


def _render_outcome(outcome: Any, *, quiet: bool) -> None:
    from llenergymeasure.orchestration.executors.base import error_headline

    counts = ", ".join(f"{n} {status}" for status, n in outcome.counts.items() if n)
    colour = {"completed": "green", "interrupted": "yellow"}.get(outcome.status, "red")
    out.print(
        f"[bold {colour}]campaign {outcome.status}[/]: {counts} "
        f"({outcome.executed} run now, {outcome.wall_s:.1f} s)"
    )
    if outcome.stop_reason:
        out.print(f"[red]stopped:[/] {escape(outcome.stop_reason)}")
    if outcome.failures:
        table = new_table(title="Failures")
        table.add_column("exp_id")
        table.add_column("status")
        table.add_column("error")
        for entry in outcome.failures:
            table.add_row(escape(entry.exp_id), entry.status, escape(error_headline(entry.error)))
        out.print(table)
        out.print("full errors: [bold]llem campaign status DIR --errors[/]")
    if quiet:
        return
    for note in outcome.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    for path in outcome.exports:
        out.print(f"wrote {escape(str(path))}")
    if outcome.status in ("interrupted", "stopped", "completed_with_failures"):
        out.print("continue with [bold]llem campaign run FILE -o DIR --resume[/]")


@app.command("run")
def run(
    file: Path = typer.Argument(..., help="Campaign YAML."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Campaign directory (default: io.results_dir)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; run nothing."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the campaign in the directory: completed runs are kept."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Move an earlier run in the directory aside and start over."
    ),
    cycles: int | None = typer.Option(None, "--cycles", min=1, help="Override execution.cycles."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before running."),
    allow_large: bool = typer.Option(
        False,
        "--allow-large",
        help="Run a plan of more than execution.max_experiments experiments (default 10,000).",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Unattended: no plan, prompt or live display; log to DIR/campaign.log; print one final line.",
    ),
) -> None:
    """Run every valid experiment of a campaign in every cycle, with a resumable manifest.

    Example: llem campaign run campaign.yaml -o results/sweep
    (then --resume after a crash or Ctrl-C; llem campaign status results/sweep).

    Writes DIR/manifest.json, DIR/<name>_c<cycle>/result.json, DIR/summary.csv,
    DIR/summary.parquet, DIR/experiments.csv, DIR/campaign.log and, with the report extra,
    DIR/report.html (see `llem report`).
    Exit 0 all completed, 1 failures or stopped early, 2 unusable file or directory state,
    130 interrupted.
    """
    import sys

    from llenergymeasure.log import logger
    from llenergymeasure.orchestration.campaign.prepare import prepare_campaign_file
    from llenergymeasure.orchestration.campaign.runner import CampaignRunner

    campaign, grid, plan = prepare_campaign_file(
        file,
        output,
        resume=resume,
        fresh=fresh,
        cycles=cycles,
        allow_large=allow_large or dry_run,  # a dry run shows any plan; running one is refused
    )
    if plan is None:
        render_plan(grid, list_names=False)
        raise typer.Exit(1)
    if not quiet or dry_run:
        _print_title(campaign, file)
        render_plan(grid, list_names=False)
        _render_header(plan, dry_run=dry_run)
    if dry_run:
        _render_order(plan)
        out.print("[dim]dry run: nothing was run or written[/]")
        return
    if not plan.runs and not plan.move_aside:
        out.print("nothing left to run: every run is completed")
    if not yes and not quiet and sys.stdin.isatty() and not typer.confirm("Proceed?", default=True):
        raise typer.Exit(1)
    if quiet:
        logger.remove()  # the campaign log is the only output besides the final line
    runner = CampaignRunner(plan, observer=None if quiet else campaign_observer())
    try:
        outcome = runner.run()
    except KeyboardInterrupt:  # a second Ctrl-C while cleaning up: the manifest is saved
        err.print("[yellow]aborted[/]")
        raise typer.Exit(130) from None
    from llenergymeasure.cli.report_cmd import campaign_report

    campaign_report(plan.output_dir, outcome)  # never fails the run
    _render_outcome(outcome, quiet=quiet)
    if not quiet and outcome.status != "interrupted":
        _render_headline(plan.output_dir)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


app.command("status")(status)
