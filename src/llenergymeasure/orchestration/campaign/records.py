"""The campaign's runs as aggregation records (their result files checked, not trusted), and
the summary tables written from them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.config.campaign_config import CampaignConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.log import logger
from llenergymeasure.orchestration.campaign.manifest import Manifest, checked_result
from llenergymeasure.orchestration.campaign.outcome import CampaignOutcome

MISSING_RESULT = "result_missing"
"""Record status of an entry the manifest calls completed whose result file is gone or bad."""


def campaign_records(directory: Path, manifest: Manifest, *, ran_only: bool = False) -> list[Any]:
    """The manifest's entries as aggregation records, each with its result when it has one;
    with ``ran_only``, pending entries are left out.

    The result files are checked, not trusted: a completed entry whose ``result.json`` is
    missing, unreadable or another config's becomes a ``result_missing`` record with the cause
    (never a blank row counted as measured).
    """
    from llenergymeasure.results.aggregation import RunRecord

    records = []
    for entry in manifest.entries:
        if ran_only and entry.status == "pending":
            continue
        result, error = None, entry.error
        status: str = entry.status
        if entry.status in ("completed", "skipped"):
            result, problem = checked_result(directory, entry)
            if problem and entry.status == "completed":
                status, error = MISSING_RESULT, f"{problem}; --resume measures it again"
        records.append(
            RunRecord(
                exp_id=entry.exp_id,
                name=entry.name,
                config_hash=entry.config_hash,
                backend=entry.backend,
                cycle=entry.cycle,
                status=status,
                model=entry.model,
                precision=entry.precision,
                error=error,
                result=result,
                result_path=f"{entry.exp_id}/result.json" if result is not None else None,
            )
        )
    return records


def export_tables(
    campaign: CampaignConfig,
    directory: Path,
    manifest: Manifest,
    outcome: CampaignOutcome,
    *,
    formats: Sequence[str],
    resamples: int | None = None,
) -> None:
    """The summary tables of the campaign's results, written into ``directory``; what was
    written (or why not) goes into ``outcome``. An interrupted campaign's tables hold the
    runs that ran, at once whatever its size."""
    if not formats:
        return
    from llenergymeasure.orchestration.campaign.adaptive import summary_columns
    from llenergymeasure.results.aggregation import BOOTSTRAP_RESAMPLES
    from llenergymeasure.results.export import write_tables

    execution, ci_method = campaign.execution, campaign.statistics.ci_method
    resamples = resamples or BOOTSTRAP_RESAMPLES
    try:
        stopping = outcome.status == "interrupted"
        records = campaign_records(directory, manifest, ran_only=stopping)
        if stopping:
            outcome.notes.append(
                f"the summary tables hold the {len(records)} run(s) that ran; the pending "
                "ones join them when --resume finishes"
            )
        report = write_tables(
            directory,
            records,
            formats=formats,
            seed=execution.seed,
            resamples=resamples,
            ci_method=ci_method,
            execution=execution,
            extra=summary_columns(
                records, execution, ci_method=ci_method, seed=execution.seed, resamples=resamples
            ),
        )
    except (LLEMError, OSError) as err:  # the measurements are safe; only tables failed
        outcome.notes.append(f"summary tables not written: {err}")
        logger.warning("summary tables not written: {}", err)
        return
    outcome.exports = report.paths
    outcome.notes.extend(report.notes)
    if report.low_cycles:
        outcome.notes.append(report.low_cycles)


__all__ = ["MISSING_RESULT", "campaign_records", "export_tables"]
