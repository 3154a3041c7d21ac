"""``llem campaign status DIR``: what a campaign directory holds, with the result files as the
truth (a journal that lost lines, completed entries without a usable result, failures)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer

from llenergymeasure.cli.render import err, escape, new_table, out, print_json


def _status_counts(manifest: Any, missing: list[Any], unrecorded: list[Any]) -> dict[str, int]:
    """Runs per status with the result files as the truth: a completed entry without a usable
    result is ``result_missing``; an entry the journal lost whose result is on disk, completed."""
    counts = manifest.counts()
    for entry in unrecorded:
        counts[entry.status] -= 1
    counts["completed"] += len(unrecorded) - len(missing)
    counts["result_missing"] = len(missing)
    return counts


def _journal_damage(directory: Path, unrecorded: list[Any]) -> str | None:
    """What the journal lost, or None when nothing says it lost anything."""
    from llenergymeasure.orchestration.campaign import journal

    if not unrecorded:
        return None
    torn = journal.torn_bytes(journal.read_bytes(directory))
    cut = f"its last {torn} byte(s) are no complete line; " if torn else ""
    return (
        f"the manifest journal ({journal.journal_path(directory)}) lost lines: {cut}"
        f"{len(unrecorded)} run(s) it does not record as completed have a valid result on disk "
        f"and are counted completed from their result files; `llem campaign run FILE -o "
        f"{directory} --resume` adopts them and never measures them again"
    )


def _status_json(
    directory: Path,
    manifest: Any,
    holder: int | None,
    missing: list[Any],
    unrecorded: list[Any],
) -> dict[str, Any]:
    counts = _status_counts(manifest, missing, unrecorded)
    return {
        "campaign_name": manifest.campaign_name,
        "directory": str(directory),
        "status": manifest.status,
        "process_running": holder is not None,
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
        "design_hash": manifest.design_hash,
        "cycles": manifest.cycles,
        "counts": counts,
        "failures": [
            {"exp_id": e.exp_id, "status": e.status, "error": e.error} for e in manifest.failures()
        ],
        "missing_results": [{"exp_id": r.exp_id, "error": r.error} for r in missing],
        "journal_damage": _journal_damage(directory, unrecorded),
        "recovered_from_results": [e.exp_id for e in unrecorded],
        "events": [event.model_dump() for event in manifest.events],
    }


def _damaged_status(directory: Path, error: Any, *, as_json: bool) -> None:
    """A manifest that cannot be read: say so, and what the result files still hold."""
    from llenergymeasure.orchestration.campaign.manifest import results_on_disk

    found = results_on_disk(directory)
    configs = len({digest for digest, _cycle in found})
    if as_json:
        print_json(
            {
                "directory": str(directory),
                "manifest_error": error.render(),
                "results_found": len(found),
                "configs_found": configs,
            }
        )
    else:
        err.print(f"[bold red]error:[/] {escape(error.render())}")
        out.print(
            f"{len(found)} valid result file(s) of {configs} config(s) are in "
            f"{escape(str(directory))}; `llem results export DIR` reads them, and "
            "`llem campaign run FILE -o DIR --resume` rebuilds the manifest from them"
        )
    raise typer.Exit(1)


def status(
    directory: Path = typer.Argument(..., help="Campaign directory (holding manifest.json)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable status on stdout."),
    errors: bool = typer.Option(False, "--errors", help="Show failures' full error text."),
) -> None:
    """Progress of a campaign: runs per status, failures with their errors, last update; every
    completed run's result file is checked.

    Example: llem campaign status results/sweep
    """
    from llenergymeasure.exceptions import ConfigError
    from llenergymeasure.orchestration.campaign.manifest import (
        ManifestDamaged,
        load_manifest,
        lock_holder,
        unrecorded_results,
    )
    from llenergymeasure.orchestration.campaign.records import MISSING_RESULT, campaign_records
    from llenergymeasure.orchestration.executors.base import error_headline

    directory = directory.expanduser()
    try:
        manifest = load_manifest(directory)
    except ManifestDamaged as error:
        _damaged_status(directory, error, as_json=as_json)
        return
    if manifest is None:
        raise ConfigError(
            f"no campaign manifest in {directory}",
            fix="give the directory a campaign ran in (llem campaign run FILE -o DIR)",
        )
    holder = lock_holder(directory)
    missing = [r for r in campaign_records(directory, manifest) if r.status == MISSING_RESULT]
    unrecorded = unrecorded_results(directory, manifest)
    if as_json:
        print_json(_status_json(directory, manifest, holder, missing, unrecorded))
        return
    counts = _status_counts(manifest, missing, unrecorded)
    active = sum(n for s, n in counts.items() if s != "skipped")
    out.print(
        f"[bold]{escape(manifest.campaign_name)}[/] in {escape(str(directory))}: "
        f"{manifest.status}, {counts['completed']}/{active} completed"
    )
    running = (
        f"a campaign process is running (pid {holder})"
        if holder is not None
        else "no campaign process is running"
    )
    out.print(f"created {manifest.created_at}, last update {manifest.updated_at}; {running}")
    if manifest.status == "running" and holder is None:
        out.print("[yellow]note:[/] the process that ran it stopped; continue with --resume")
    table = new_table(title="Runs per status")
    table.add_column("status")
    table.add_column("runs", justify="right")
    for name, count in counts.items():
        if count:
            table.add_row(name, str(count))
    out.print(table)
    damage = _journal_damage(directory, unrecorded)
    if damage:
        out.print(f"[bold yellow]warning:[/] {escape(damage)}")
        names = ", ".join(e.exp_id for e in unrecorded[:10])
        more = f" and {len(unrecorded) - 10} more" if len(unrecorded) > 10 else ""
        out.print(f"  recovered from result files: {escape(names)}{more}")
    if missing:
        out.print(f"[bold red]{len(missing)} run(s) recorded as completed have no usable result[/]")
        for record in missing:
            out.print(f"  [red]{escape(record.exp_id)}[/]: {escape(record.error or '')}")
    failures = manifest.failures()
    if failures:
        out.print(f"[bold red]{len(failures)} failed or interrupted[/]")
        for entry in failures:
            text = entry.error if errors else error_headline(entry.error)
            out.print(f"  [red]{escape(entry.exp_id)}[/] ({entry.status}): {escape(text or '')}")
    skipped = [e for e in manifest.entries if e.status == "skipped"]
    if skipped:
        reasons = Counter(e.reason or "skipped" for e in skipped)
        for reason, count in reasons.most_common():
            out.print(f"  [dim]skipped x {count}: {escape(reason)}[/]")
