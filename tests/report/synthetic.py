"""Synthetic campaign results for report tests and benchmarks: schema-valid results with known
metrics over a grid of batch size x output length (x precision, x backend), no model run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fakes.results import experiment_result
from llenergymeasure.report.source import ReportSource
from llenergymeasure.results.aggregation import RunRecord, aggregate
from llenergymeasure.results.schema import (
    EnergyProvenance,
    ExperimentResult,
    QualityFlag,
)

ENV = {
    "hostname": "node-1",
    "cpu": {"model": "Test CPU"},
    "gpus": [{"name": "Test GPU 80GB"}],
    "gpu_driver_version": "550.1",
    "cuda_driver_version": "12.4",
    "libraries": {"llenergymeasure": "0.1.0", "torch": "2.13.0"},
}


def config(
    batch_size: int, max_output_tokens: int, *, precision: str = "float16", backend: str = "pytorch"
) -> dict[str, Any]:
    name = f"{backend}_bs{batch_size}_out{max_output_tokens}_{precision}"
    return {
        "name": name,
        "model": {"name": "builtin:tiny-gpt2"},
        "backend": backend,
        "fp_precision": precision,
        "max_output_tokens": max_output_tokens,
        "pytorch": {"batch_size": batch_size} if backend == "pytorch" else None,
        "vllm": {"max_num_seqs": batch_size} if backend == "vllm" else None,
    }


def result(
    exp_id: str,
    cfg: dict[str, Any],
    *,
    jpt: float,
    tps: float,
    latency_s: float = 0.1,
    estimate: bool = True,
    baseline_w: float | None = None,
    flags: Sequence[QualityFlag] = (),
    timeseries_file: str | None = None,
) -> ExperimentResult:
    """A result whose J/token (raw basis, or adjusted when ``baseline_w``) is ``jpt``."""
    tokens = 64
    window = tokens / tps
    adjusted = jpt * tokens if baseline_w is not None else None
    raw = adjusted + baseline_w * window if adjusted is not None and baseline_w else jpt * tokens
    return experiment_result(
        exp_id,
        cfg["name"],
        cfg,
        "h_" + cfg["name"],
        requests=4,
        tokens=tokens,
        window_s=window,
        energy_j=raw,
        energy_adjusted_j=adjusted,
        energy=EnergyProvenance(
            source="estimate" if estimate else "nvml",
            method="estimate" if estimate else "counter",
            is_estimate=estimate,
            devices=["cpu"] if estimate else ["GPU-0"],
            window_s=window,
            baseline_power_w=baseline_w,
        ),
        latency_s=latency_s,
        mean_power_w=raw / window,
        environment=ENV,
        warmup=(0.5, 2, True, 0.01),
        flags=flags,
        timeseries_file=timeseries_file,
    )


def record(res: ExperimentResult, cycle: int, status: str = "completed") -> RunRecord:
    return RunRecord(
        exp_id=res.experiment_id,
        name=res.name,
        config_hash=res.config_hash,
        backend=res.config["backend"],
        cycle=cycle,
        status=status,
        result=res,
        result_path=f"{res.experiment_id}/result.json",
    )


def grid_records(
    batch_sizes: Sequence[int] = (1, 4),
    outputs: Sequence[int] = (32,),
    precisions: Sequence[str] = ("float16",),
    backends: Sequence[str] = ("pytorch",),
    *,
    cycles: int = 3,
    estimate: bool = True,
    baseline_w: float | None = None,
) -> list[RunRecord]:
    """Every combination x cycles, with metrics that follow simple laws plus a little noise:
    bigger batches cost less energy per token and run faster; longer outputs cost more."""
    records = []
    for i, (bs, out, precision, backend) in enumerate(
        itertools.product(batch_sizes, outputs, precisions, backends)
    ):
        cfg = config(bs, out, precision=precision, backend=backend)
        for cycle in range(1, cycles + 1):
            noise = 1 + 0.03 * math.sin(7 * i + 3 * cycle)
            jpt = 0.4 / math.sqrt(bs) * (1 + out / 256) * noise
            tps = 80.0 * bs**0.8 / (1 + out / 512) / noise
            records.append(
                record(
                    result(
                        f"{cfg['name']}_c{cycle}",
                        cfg,
                        jpt=jpt,
                        tps=tps,
                        latency_s=0.05 * (1 + out / 64) * noise,
                        estimate=estimate,
                        baseline_w=baseline_w,
                    ),
                    cycle,
                )
            )
    return records


def source(
    records: list[RunRecord], *, label: str = "synthetic", directory: Path | None = None
) -> ReportSource:
    return ReportSource(
        label=label,
        directory=directory or Path(label),
        records=records,
        summaries=aggregate(records),
        campaign={"name": label, "status": "completed", "cycles": 3},
    )


def big_grid(n_configs: int, *, cycles: int = 3) -> list[RunRecord]:
    """About ``n_configs`` configs: batch sizes x output lengths x precisions x 2 backends."""
    batch = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    outputs = [16 * (k + 1) for k in range(max(1, math.ceil(n_configs / (len(batch) * 4))))]
    records = grid_records(
        batch, outputs, ("float16", "bfloat16"), ("pytorch", "vllm"), cycles=cycles
    )
    hashes = list(dict.fromkeys(r.config_hash for r in records))[:n_configs]
    keep = set(hashes)
    return [r for r in records if r.config_hash in keep]


def save_all(records: Sequence[RunRecord], directory: Path) -> None:
    """Write each record's result under ``directory/<exp_id>/`` (a folder of llem run results)."""
    for r in records:
        assert r.result is not None
        r.result.save(directory / r.exp_id)
