"""Resume: an earlier manifest reconciled with the campaign file as it is now.

Completed runs are kept (a result on disk is the proof), the rest rerun, new experiments added,
removed ones kept as skipped with their results; :class:`DesignChange` says what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.config.campaign_config import CampaignConfig
from llenergymeasure.orchestration.manifest import (
    Manifest,
    ManifestEntry,
    design_hash,
    result_is_valid,
)
from llenergymeasure.orchestration.order import plan_order
from llenergymeasure.orchestration.planned import PlannedExperiment, new_entry


@dataclass
class DesignChange:
    """How the campaign file's experiment list differs from the manifest being resumed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    cycles: tuple[int, int] | None = None
    order: tuple[str, str] | None = None
    campaign_name: tuple[str, str] | None = None

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.renamed
            or self.cycles
            or self.order
            or self.campaign_name
        )

    def lines(self) -> list[str]:
        def names(items: Sequence[str]) -> str:
            shown = ", ".join(items[:10])
            return shown + (f", ... ({len(items) - 10} more)" if len(items) > 10 else "")

        lines = []
        if self.campaign_name:
            lines.append(f"campaign name: {self.campaign_name[0]} -> {self.campaign_name[1]}")
        if self.added:
            lines.append(f"added {len(self.added)} experiment(s), to run: {names(self.added)}")
        if self.removed:
            lines.append(
                f"removed {len(self.removed)} experiment(s), kept as skipped with their results: "
                f"{names(self.removed)}"
            )
        if self.renamed:
            lines.append(
                "renamed (same config): " + names([f"{a} -> {b}" for a, b in self.renamed])
            )
        if self.cycles:
            before, after = self.cycles
            what = "adds cycles" if after > before else "later cycles kept as skipped"
            lines.append(f"cycles: {before} -> {after} ({what})")
        if self.order:
            lines.append(
                f"order: {self.order[0]} -> {self.order[1]} (only the remaining runs' order changes)"
            )
        return lines


def reconcile(
    old: Manifest,
    experiments: list[PlannedExperiment],
    campaign: CampaignConfig,
    directory: Path,
    executor: str,
) -> tuple[Manifest, DesignChange, list[str]]:
    """The resumed manifest: completed runs kept (a result on disk is the proof), the rest
    rerun, new experiments added, removed ones kept as skipped with their results."""
    execution = campaign.execution
    change = DesignChange()
    notes: list[str] = []
    by_key = {e.key: e.model_copy() for e in old.entries}
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
    if old.cycles != execution.cycles:
        change.cycles = (old.cycles, execution.cycles)
    before = f"{old.structure} (seed {old.seed})"
    after = f"{execution.structure} (seed {execution.seed})"
    if before != after:
        change.order = (before, after)
    if old.campaign_name != campaign.campaign_name:
        change.campaign_name = (old.campaign_name, campaign.campaign_name)

    used = {e.exp_id for e in old.entries}
    recovered = 0
    entries: list[ManifestEntry] = []
    for index, cycle in plan_order(
        len(experiments), execution.cycles, execution.structure, execution.seed
    ):
        experiment = experiments[index]
        entry = by_key.pop((experiment.config_hash, cycle), None)
        if entry is None:
            entries.append(new_entry(experiment, cycle, used))
            continue
        entry.name = experiment.name
        entry.model, entry.precision = experiment.model, experiment.precision
        entry.result_path = entry.result_path or f"{entry.exp_id}/result.json"
        if result_is_valid(directory, entry):
            if entry.status != "completed":
                recovered += entry.status in ("running", "interrupted", "failed", "pending")
                entry.status, entry.error, entry.reason = "completed", None, None
        elif entry.status == "completed":
            entry.status = "pending"
            entry.error = "its result file was missing or unreadable on resume; it runs again"
        elif entry.status == "running":
            entry.status = "interrupted"
            entry.error = "the campaign process stopped while this experiment ran (killed?)"
        elif entry.status == "skipped":
            entry.status, entry.reason = "pending", None
        entries.append(entry)
    for entry in by_key.values():  # no longer part of the design: kept, never deleted
        if entry.status != "skipped":
            entry.reason = (
                "removed from the campaign file"
                if entry.config_hash not in new_hashes
                else f"cycle {entry.cycle} is beyond cycles={execution.cycles}"
            )
            if entry.status == "running":
                entry.error = "the campaign process stopped while this experiment ran (killed?)"
            entry.status = "skipped"
        entries.append(entry)
    if recovered:
        notes.append(
            f"{recovered} experiment(s) had finished but were not yet recorded as such "
            "(the process stopped between writing the result and the manifest): marked completed"
        )
    manifest = old.model_copy(deep=True)
    manifest.entries = entries
    manifest.campaign_name = campaign.campaign_name
    manifest.design_hash = design_hash([e.config_hash for e in experiments])
    manifest.cycles = execution.cycles
    manifest.structure = execution.structure
    manifest.seed = execution.seed
    manifest.executor = executor
    return manifest, change, notes
