"""Preparing a campaign: what will run, in which order, with which executor, and how long it
may take. :func:`prepare_campaign` reads the disk (an existing manifest, earlier results) and
writes nothing, so a dry run and a confirmation prompt can sit between planning and running.
"""

from __future__ import annotations

import functools
import os
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.config.campaign_config import CampaignConfig, ExecutionConfig
from llenergymeasure.config.models import NODE_WIDE_SOURCES
from llenergymeasure.exceptions import ConfigError, LLEMError
from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.campaign.adaptive import plan_note
from llenergymeasure.orchestration.campaign.manifest import (
    Manifest,
    ManifestDamaged,
    ManifestEntry,
    checked_result,
    directory_contents,
    load_manifest,
    manifest_fingerprint,
    manifest_path,
    now_iso,
    result_file,
)
from llenergymeasure.orchestration.campaign.order import balance_note
from llenergymeasure.orchestration.campaign.plan import (
    CampaignPlan,
    NewRuns,
    planned_experiments,
)
from llenergymeasure.orchestration.campaign.resume import reconcile
from llenergymeasure.orchestration.grid_validation import ValidatedGrid


def choose_executor(execution: ExecutionConfig) -> tuple[str, list[str]]:
    """The executor that will run, with a note when it differs from the one asked for."""
    if execution.experiment_timeout_seconds is not None and execution.executor == "inprocess":
        return "subprocess", [
            f"execution.experiment_timeout_seconds={execution.experiment_timeout_seconds:g}: "
            "each experiment runs in its own process so the timeout can be enforced "
            "(models are loaded cold, no reuse); set executor: subprocess to silence this note"
        ]
    if execution.executor == "ray":
        notes = [
            f"executor ray (address {execution.ray.address}): several experiments at once, a "
            "config's cycle k+1 never before its cycle k ends; each result records its host, "
            "node and devices"
        ]
        if execution.config_gap_seconds or execution.cycle_gap_seconds:
            notes.append(
                "config/cycle gaps and the thermal wait are not applied between experiments that "
                "run in parallel"
            )
        return "ray", notes
    return execution.executor, []


def node_wide_note(grid: ValidatedGrid, executor: str) -> str | None:
    """With parallel experiments: which ones will run alone on their machine, and why."""
    if executor != "ray":
        return None
    sources: Counter[str] = Counter()
    for info, count in zip(grid.kept.infos, grid.kept.info_counts, strict=True):
        sources[info.energy_source] += count
    alone = sum(n for source, n in sources.items() if source in NODE_WIDE_SOURCES)
    auto = sources["auto"]
    if not alone and not auto:
        return None
    parts = [f"{alone} read node-wide energy (RAPL, CodeCarbon or the estimate)"] if alone else []
    if auto:
        parts.append(f"{auto} use energy source auto, node-wide on a machine without an NVIDIA GPU")
    return (
        f"of {grid.valid} experiment(s), {' and '.join(parts)}: a node-wide experiment "
        "runs alone on its machine (the others there wait), so its energy is its own"
    )


def _earlier_timings(directory: Path, entries: Sequence[ManifestEntry]) -> dict[str, float]:
    seen: dict[str, list[float]] = {}
    for entry in entries:
        if entry.status != "completed":
            continue
        result, _ = checked_result(directory, entry)
        if result is not None:
            seen.setdefault(entry.config_hash, []).append(result.timings.total_s)
    return {digest: statistics.fmean(values) for digest, values in seen.items()}


def no_valid_experiment() -> LLEMError:
    """What preparing a campaign whose grid kept no experiment says."""
    return LLEMError(
        "the campaign has no valid experiment to run",
        fix="`llem campaign validate FILE` shows why each one was filtered",
    )


def prepare_campaign_file(
    campaign_file: Path,
    output_dir: Path | None = None,
    *,
    resume: bool = False,
    fresh: bool = False,
    cycles: int | None = None,
    allow_large: bool = False,
) -> tuple[CampaignConfig, ValidatedGrid, CampaignPlan | None]:
    """Every step before running a campaign file: loaded, its grid planned, its directory
    (``output_dir``, else ``io.results_dir``) checked, the plan prepared and its size checked
    (see :meth:`CampaignPlan.check_size`). The plan is None when the grid kept no experiment (the grid
    says why); reads the disk, writes nothing."""
    from llenergymeasure.files import check_output_dir
    from llenergymeasure.orchestration.campaign.experiments import load_and_plan

    campaign, grid = load_and_plan(campaign_file)
    directory = (output_dir or Path(campaign.io.results_dir)).expanduser()
    check_output_dir(directory, what="campaign directory", create=False)
    if not grid.valid:
        return campaign, grid, None
    plan = prepare_campaign(
        campaign,
        grid,
        directory,
        resume=resume,
        fresh=fresh,
        cycles=cycles,
        campaign_file=campaign_file,
    )
    if not allow_large:
        plan.check_size()
    return campaign, grid, plan


def prepare_campaign(
    campaign: CampaignConfig,
    grid: ValidatedGrid,
    output_dir: Path,
    *,
    resume: bool = False,
    fresh: bool = False,
    cycles: int | None = None,
    campaign_file: Path | None = None,
) -> CampaignPlan:
    """Decide what will run and in which order; reads the disk, writes nothing.

    An existing manifest without ``resume`` or ``fresh`` is a ConfigError naming both flags.
    """
    if resume and fresh:
        raise ConfigError(
            "--resume and --fresh exclude each other",
            fix="--resume continues the campaign in the directory; --fresh moves it aside and starts over",
        )
    if not grid.valid:
        raise no_valid_experiment()
    campaign = _with_cycles(campaign, cycles)
    executor, notes = choose_executor(campaign.execution)
    notes.extend(_planning_notes(campaign, grid, executor))
    existing, damaged = _existing_manifest(output_dir, resume=resume or fresh)
    owned, foreign = _directory_contents(output_dir, existing, campaign)
    file_text = str(campaign_file.expanduser().resolve()) if campaign_file is not None else None
    recorded = {  # what report and export need, so they never re-plan the grid
        "campaign_file": file_text,
        "filtered": grid.tally.filtered_examples(),
        "execution": campaign.execution.model_dump(mode="json"),
        "ci_method": campaign.statistics.ci_method,
    }
    common: dict[str, Any] = {
        "campaign": campaign,
        "output_dir": output_dir,
        "experiments": planned_experiments(grid),
        "executor": executor,
        "reuse_models": not campaign.cold_start.force_cold_start and executor != "subprocess",
        "notes": notes,
        "basis": manifest_fingerprint(output_dir),
        "replan": functools.partial(
            prepare_campaign,
            campaign,
            grid,
            output_dir,
            resume=resume,
            fresh=fresh,
            campaign_file=campaign_file,
        ),
    }
    if resume and owned:
        return _resumed_plan(existing, damaged, recorded, common)
    return _new_plan(recorded, common, owned, foreign, resume=resume, fresh=fresh)


def _with_cycles(campaign: CampaignConfig, cycles: int | None) -> CampaignConfig:
    """``--cycles N``: N cycles for every config (adaptive: the first N)."""
    if cycles is None:
        return campaign
    update: dict[str, Any] = {"cycles": cycles}
    if campaign.execution.min_cycles is not None:
        update["min_cycles"] = cycles
    execution = campaign.execution.model_copy(update=update)
    return campaign.model_copy(update={"execution": execution})


def _planning_notes(campaign: CampaignConfig, grid: ValidatedGrid, executor: str) -> list[str]:
    """What the plan's header says about how the campaign will run."""
    execution = campaign.execution
    notes = [node_wide_note(grid, executor)]
    if execution.structure == "grouped" and campaign.schedule.interval_seconds:
        notes.append(
            "structure grouped: schedule.interval_seconds paces the start of each experiment's block"
        )
    if execution.structure == "balanced":
        notes.append(balance_note(grid.valid, execution.first_cycles))
    notes.append(plan_note(execution))
    return [note for note in notes if note]


def _existing_manifest(output_dir: Path, *, resume: bool) -> tuple[Manifest | None, str | None]:
    """The directory's manifest (None: none, or damaged and being resumed or replaced) and
    what damaged it. Without ``resume`` (--resume or --fresh) an existing one is refused."""
    try:
        existing = load_manifest(output_dir)
    except ManifestDamaged as err:
        if not resume:
            raise
        return None, err.what
    if existing is not None and not resume:
        counts = existing.counts()
        total = len([e for e in existing.entries if e.status != "skipped"])
        raise ConfigError(
            f"{output_dir} already holds campaign '{existing.campaign_name}' "
            f"({counts['completed']}/{total} completed, last update {existing.updated_at})",
            where=str(manifest_path(output_dir)),
            fix="--resume to continue it, --fresh to move it aside (nothing is deleted) and "
            "start over, or -o to use another directory",
        )
    return existing, None


def _directory_contents(
    output_dir: Path, existing: Manifest | None, campaign: CampaignConfig
) -> tuple[list[Path], list[Path]]:
    """(what the campaign owns, what it does not) in the directory; refused when it holds only
    things that are not a campaign's."""
    owned, foreign = directory_contents(output_dir, existing)
    if not owned and foreign:
        raise ConfigError(
            f"{output_dir} is not empty and is not a campaign directory (it holds "
            f"{_listed(foreign)})",
            fix="a campaign writes many files into its directory: give -o a new or empty "
            f"directory, e.g. -o {output_dir / safe_name(campaign.campaign_name)}",
        )
    return owned, foreign


def _listed(paths: Sequence[Path]) -> str:
    return ", ".join(p.name for p in paths[:5]) + (", ..." if len(paths) > 5 else "")


def _resumed_plan(
    existing: Manifest | None,
    damaged: str | None,
    recorded: dict[str, Any],
    common: dict[str, Any],
) -> CampaignPlan:
    """Continue the campaign in the directory: its manifest reconciled with this plan."""
    from llenergymeasure.orchestration.campaign.manifest import lock_holder

    output_dir: Path = common["output_dir"]
    holder = lock_holder(output_dir)
    if holder is not None and holder != os.getpid():
        common["notes"].append(
            f"a campaign process (pid {holder}) is still running in {output_dir}: "
            "running entries below may be live"
        )
    manifest, change, more = reconcile(
        existing, common["experiments"], common["campaign"], output_dir, common["executor"]
    )
    if existing is None:
        why = f"could not be read ({damaged})" if damaged else "is missing"
        more.insert(
            0,
            f"the campaign manifest {why}: rebuilt from the result files on disk"
            + (", the damaged file kept as manifest.json.damaged-<time>" if damaged else ""),
        )
    recorded["campaign_file"] = recorded["campaign_file"] or manifest.campaign_file
    for key, value in recorded.items():
        setattr(manifest, key, value)
    plan = CampaignPlan(
        built=manifest,
        mode="resume",
        change=change,
        damaged_manifest=damaged is not None,
        **common,
    )
    plan.notes.extend(more)
    plan.timings_s = _earlier_timings(output_dir, manifest.entries)
    return plan


def _new_plan(
    recorded: dict[str, Any],
    common: dict[str, Any],
    owned: list[Path],
    foreign: list[Path],
    *,
    resume: bool,
    fresh: bool,
) -> CampaignPlan:
    """A new campaign (or ``--fresh``: the old one moved aside first); its manifest is built
    only when first read."""
    campaign: CampaignConfig = common["campaign"]
    output_dir: Path = common["output_dir"]
    execution = campaign.execution
    now = now_iso()
    header = {
        "campaign_name": campaign.campaign_name,
        "created_at": now,
        "updated_at": now,
        "cycles": execution.first_cycles,
        "structure": execution.structure,
        "seed": execution.seed,
        "executor": common["executor"],
        **recorded,
    }
    runs = NewRuns(common["experiments"], execution, header)
    plan = CampaignPlan(new_runs=runs, mode="fresh" if fresh else "new", **common)
    if fresh:
        plan.move_aside = owned
        if foreign:
            plan.notes.append(
                f"--fresh leaves what is not the campaign's in place: {_listed(foreign)}"
            )
        return plan
    if resume:
        plan.notes.append(f"nothing to resume in {output_dir}: starting a new campaign")
    # results on disk are listed once; the plan's ids are checked against them in memory
    found = {p.name for p in owned if (p / "result.json").exists()}
    clash = next((e for e in runs.entries() if e.exp_id in found), None) if found else None
    if clash is not None:
        raise ConfigError(
            f"{output_dir} already holds results without a campaign manifest "
            f"(e.g. {result_file(output_dir, clash)})",
            fix="--resume adopts the results that belong to this campaign (the manifest is "
            "rebuilt from them), --fresh moves them aside (nothing is deleted), or -o to use "
            "another directory",
        )
    return plan
