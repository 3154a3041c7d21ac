"""Resume: an earlier manifest reconciled with the campaign file as it is now.

Completed runs are kept (a result on disk is the proof), the rest rerun, new experiments added,
removed ones kept as skipped with their results; ``plan.DesignChange`` says what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from llenergymeasure.config.campaign_config import CampaignConfig, ExecutionConfig
from llenergymeasure.orchestration.campaign.manifest import (
    Manifest,
    ManifestEntry,
    ResultOnDisk,
    design_hash,
    now_iso,
    result_is_valid,
    results_on_disk,
)
from llenergymeasure.orchestration.campaign.order import plan_order
from llenergymeasure.orchestration.campaign.plan import DesignChange, PlannedExperiment, new_entry


def reconcile(
    old: Manifest | None,
    experiments: Sequence[PlannedExperiment],
    campaign: CampaignConfig,
    directory: Path,
    executor: str,
) -> tuple[Manifest, DesignChange, list[str]]:
    """The resumed manifest: completed runs kept (a result on disk is the proof, wherever the
    manifest said it was), the rest rerun, new experiments added, removed ones kept as skipped
    with their results. ``old`` None: the index is rebuilt from the result files alone."""
    execution = campaign.execution
    old_entries = old.entries if old is not None else []
    on_disk = results_on_disk(directory)
    change = _design_change(old, experiments, campaign) if old is not None else DesignChange()
    new_hashes = {e.config_hash for e in experiments}
    by_key = {e.key: replace(e) for e in old_entries}
    used = {e.exp_id for e in old_entries}
    if directory.is_dir():
        used |= {p.name for p in directory.iterdir() if p.is_dir()}
    counts = {"recovered": 0, "adopted": 0}
    entries: list[ManifestEntry] = []
    for index, cycle in plan_order(
        len(experiments), execution.first_cycles, execution.structure, execution.seed
    ):
        experiment = experiments[index]
        key = (experiment.config_hash, cycle)
        entry = by_key.pop(key, None)
        found = on_disk.pop(key, None)
        if entry is None:
            entry = new_entry(experiment, cycle, used, exp_id=found.exp_id if found else None)
            if found is not None:
                entry.status = "completed"
                counts["adopted"] += 1
            entries.append(entry)
            continue
        entries.append(_refreshed(entry, experiment, found, directory, counts))
    planned = {e.config_hash: e for e in experiments}
    for entry in by_key.values():
        extra = planned.get(entry.config_hash)
        if extra is not None and _adaptive_extra(entry.cycle, execution):
            # an extra cycle adaptive cycles scheduled: part of the plan, kept as scheduled
            found = on_disk.pop(entry.key, None)
            entries.append(_refreshed(entry, extra, found, directory, counts))
            continue
        if entry.status != "skipped":  # no longer part of the design: kept, never deleted
            entry.reason = (
                "removed from the campaign file"
                if entry.config_hash not in new_hashes
                else f"cycle {entry.cycle} is beyond "
                + (
                    f"max_cycles={execution.cycle_limit}"
                    if execution.adaptive
                    else f"cycles={execution.cycles}"
                )
            )
            if entry.status == "running":
                entry.error = "the campaign process stopped while this experiment ran (killed?)"
            entry.status = "skipped"
        entries.append(entry)
    for (digest, cycle), found in sorted(on_disk.items(), key=lambda item: item[0][1]):
        extra = planned.get(digest)
        if extra is not None and _adaptive_extra(cycle, execution):
            # an extra cycle that was measured but never indexed (killed before the manifest
            # was saved): its result is adopted, never measured again
            entry = new_entry(extra, cycle, used, exp_id=found.exp_id)
            entry.status = "completed"
            entry.why = "adaptive cycle adopted from its result on disk"
            counts["adopted"] += 1
            entries.append(entry)
            del on_disk[(digest, cycle)]
    indexed = {e.exp_id for e in entries}
    for (digest, cycle), found in on_disk.items():  # results of no planned run: indexed, kept
        if found.exp_id not in indexed:
            entries.append(
                ManifestEntry(
                    exp_id=found.exp_id,
                    name=found.name,
                    config_hash=digest,
                    backend=found.backend,
                    cycle=cycle,
                    status="skipped",
                    result_path=f"{found.exp_id}/result.json",
                    reason="a result on disk that is not part of the campaign file",
                )
            )
    notes: list[str] = []
    if counts["recovered"]:
        notes.append(
            f"{counts['recovered']} experiment(s) had finished but were not yet recorded as such "
            "(the process stopped between writing the result and the manifest): marked completed"
        )
    if counts["adopted"]:
        notes.append(
            f"{counts['adopted']} result(s) found on disk that the manifest did not point at: adopted as "
            "completed (never measured again)"
        )
    return _manifest_for(old, entries, experiments, campaign, executor), change, notes


def _adaptive_extra(cycle: int, execution: ExecutionConfig) -> bool:
    """Whether ``cycle`` is one adaptive cycles may add (past the first cycles, within max)."""
    return execution.adaptive and execution.first_cycles < cycle <= execution.cycle_limit


def _refreshed(
    entry: ManifestEntry,
    experiment: PlannedExperiment,
    found: ResultOnDisk | None,
    directory: Path,
    counts: dict[str, int],
) -> ManifestEntry:
    """A kept entry brought up to date with the disk: completed if its result is there (even
    where the manifest did not point), to run again otherwise."""
    entry.name = experiment.name
    entry.model, entry.precision = experiment.model, experiment.precision
    valid = result_is_valid(directory, entry)
    if not valid and found is not None:
        entry.exp_id = found.exp_id  # the manifest pointed elsewhere: the disk is the truth
        counts["adopted"] += 1
        valid = True
    entry.result_path = f"{entry.exp_id}/result.json"
    if valid:
        if entry.status != "completed":
            counts["recovered"] += entry.status in ("running", "interrupted", "failed", "pending")
            entry.status, entry.error, entry.reason = "completed", None, None
    elif entry.status == "completed":
        entry.status = "pending"
        entry.error = "its result file was missing or unreadable on resume; it runs again"
    elif entry.status == "running":
        entry.status = "interrupted"
        entry.error = "the campaign process stopped while this experiment ran (killed?)"
    elif entry.status == "skipped":
        entry.status, entry.reason = "pending", None
    return entry


def _design_change(
    old: Manifest, experiments: Sequence[PlannedExperiment], campaign: CampaignConfig
) -> DesignChange:
    execution = campaign.execution
    change = DesignChange()
    old_names: dict[str, str] = {}  # the experiments of the design being resumed
    for e in old.entries:
        if e.status != "skipped":
            old_names[e.config_hash] = e.name
    new_hashes = {e.config_hash for e in experiments}
    change.added = [e.name for e in experiments if e.config_hash not in old_names]
    change.removed = [name for digest, name in old_names.items() if digest not in new_hashes]
    change.renamed = [
        (old_names[e.config_hash], e.name)
        for e in experiments
        if e.config_hash in old_names and old_names[e.config_hash] != e.name
    ]
    if old.cycles != execution.first_cycles:
        change.cycles = (old.cycles, execution.first_cycles)
    before = f"{old.structure} (seed {old.seed})"
    after = f"{execution.structure} (seed {execution.seed})"
    if before != after:
        change.order = (before, after)
    if old.campaign_name != campaign.campaign_name:
        change.campaign_name = (old.campaign_name, campaign.campaign_name)
    return change


def _manifest_for(
    old: Manifest | None,
    entries: list[ManifestEntry],
    experiments: Sequence[PlannedExperiment],
    campaign: CampaignConfig,
    executor: str,
) -> Manifest:
    execution = campaign.execution
    fields = {
        "entries": entries,
        "campaign_name": campaign.campaign_name,
        "design_hash": design_hash([e.config_hash for e in experiments]),
        "cycles": execution.first_cycles,
        "structure": execution.structure,
        "seed": execution.seed,
        "executor": executor,
    }
    if old is None:
        now = now_iso()
        manifest = Manifest(created_at=now, updated_at=now, **fields)
        manifest.log("rebuilt from the result files on disk")
        return manifest
    manifest = old.model_copy(deep=True)
    for name, value in fields.items():
        setattr(manifest, name, value)
    return manifest
