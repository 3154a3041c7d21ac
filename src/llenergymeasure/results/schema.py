"""ExperimentResult: one measured experiment, saying how every number was obtained.

Versioned (``schema_version``) so readers can refuse what they do not understand. Energy figures
always travel with their ``EnergyProvenance``: the method (counter, polling, rapl, estimate,
...), devices, sample interval, window and baseline; an estimate is flagged as one.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from llenergymeasure.exceptions import LLEMError, ResultWriteError
from llenergymeasure.files import default_cache_dir, json_bytes, write_bytes_new

SCHEMA_VERSION = "1"
UNSAVED_DIR = "unsaved"
"""Under the user's cache: results that could not be written where they were asked to go."""
RESULT_FILE = "result.json"
TIMESERIES_FILE = "timeseries.csv"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Percentiles(_Record):
    """Distribution of a per-request quantity, in seconds."""

    mean: float
    p50: float
    p90: float
    p99: float
    count: int


class EnergyProvenance(_Record):
    """Where the energy figures came from."""

    source: str | None = Field(description="nvml, rapl, zeus, codecarbon or estimate.")
    method: str | None = Field(description="counter, polling, rapl, zeus, codecarbon or estimate.")
    is_estimate: bool = Field(description="True when the figure is modelled, not measured.")
    devices: list[str] = Field(default_factory=list)
    sample_interval_ms: float | None = None
    window_s: float | None = Field(None, description="Length of the measured window.")
    resolution_warning: str | None = None
    baseline_power_w: float | None = Field(None, description="Idle power subtracted, if any.")
    baseline: dict[str, Any] | None = Field(None, description="How the baseline was measured.")
    throttle_reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    unavailable_reason: str | None = Field(None, description="Why no energy could be read.")
    device_info: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Each measured device: name, uuid, nvml_index, cuda_index (GPU sources).",
    )
    per_device_energy_j: dict[str, float] = Field(
        default_factory=dict,
        description="Each measured device's share of energy_j (their sum), by UUID where the "
        "device has one (GPUs), else by its label (package-0, cpu).",
    )
    update_period_s: float | None = Field(
        None, description="How often the source's reading can change (see update_period_method)."
    )
    update_period_method: str | None = Field(None, description="Measured at start, or nominal.")
    error_bound_pct: float | None = Field(
        None,
        description="Worst-case quantisation error of energy_j: 100 x update_period_s / window_s.",
    )
    target_error_pct: float | None = Field(
        None, description="The bound the window had to reach (K = 100 / target update periods)."
    )
    required_window_s: float | None = Field(
        None, description="max(min_window_s, K x update_period_s): the window aimed for."
    )
    passes: int = Field(1, description="Whole passes over the prompts in the measured window.")
    power_method: str | None = Field(
        None, description="How power was polled: instant field, or the averaged call."
    )
    crosscheck: dict[str, Any] | None = Field(
        None,
        description="Counter J vs integral of polled power J: counter_j, polled_j, "
        "disagreement_pct, allowance_pct.",
    )
    other_processes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Other processes seen on a measured GPU at any power sample of the "
        "window (a union: device, pid, used_gpu_memory_bytes, first_seen_s, last_seen_s).",
    )
    unknown_processes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="PIDs NVML listed on a measured GPU that do not exist in this PID "
        "namespace: this process under its host PID in a container, or another container's "
        "job; never taken to be ours.",
    )
    host_load: dict[str, Any] | None = Field(
        None,
        description="CPU-side sources (RAPL, estimate, CodeCarbon): other processes' share of "
        "all CPU time during the window (other_cpu_share_pct, its worst sampled interval "
        "other_cpu_share_max_pct), load_average_1m_min/max, samples, interval_s, threshold_pct, "
        "method; None for GPU sources.",
    )
    mig_whole_gpu: bool = Field(False, description="A MIG-enabled GPU was measured whole.")
    state_start: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per device at window start: P-state, clocks, temperature, power.",
    )
    state_end: list[dict[str, Any]] = Field(
        default_factory=list, description="The same at window end."
    )


class Metrics(_Record):
    """What the measured window produced and cost."""

    num_requests: int
    input_tokens: int
    output_tokens: int
    measured_window_s: float
    tokens_per_second: float = Field(description="Output tokens / measured window.")
    requests_per_second: float
    energy_j: float | None = Field(description="Raw energy over the measured window.")
    energy_adjusted_j: float | None = Field(
        description="energy_j minus baseline power x measured window (None without a baseline, "
        "or when it does not resolve: see energy_adjusted_null_reason)."
    )
    energy_per_token_j: float | None = Field(
        description="Per output token; basis says which energy (None when the basis is "
        "adjusted and the adjusted figure did not resolve: energy_per_token_raw_j stands)."
    )
    energy_per_request_j: float | None
    energy_basis: str | None = Field(description="'adjusted' (baseline subtracted) or 'raw'.")
    tokens_per_joule: float | None
    mean_power_w: float | None
    latency_s: Percentiles = Field(description="Per request: end minus arrival (or batch start).")
    ttft_s: Percentiles | None = Field(
        None,
        description="Service time to first token: from the request's generate call starting "
        "(streaming only).",
    )
    itl_s: Percentiles | None = Field(None, description="Inter-token latency (streaming only).")
    peak_memory_bytes: int | None
    peak_memory_method: str
    flops: float | None
    flops_method: str
    energy_per_total_token_j: float | None = Field(
        None, description="Basis energy / (input + output tokens)."
    )
    energy_per_token_raw_j: float | None = Field(
        None, description="Raw energy / output tokens, whatever happened to the adjusted figure."
    )
    energy_adjusted_null_reason: str | None = Field(
        None, description="Why the baseline-adjusted figures are null although raw energy exists."
    )
    ttft_from_arrival_s: Percentiles | None = Field(
        None,
        description="Time to first token from the request's arrival, queueing included "
        "(streaming only).",
    )
    tpot_s: Percentiles | None = Field(
        None,
        description="Time per output token after the first: (end - first token) / (output - 1), "
        "per request (streaming only).",
    )


class QualityFlag(_Record):
    """Something the measurement layer found that limits how far a number can be trusted.

    ``untrusted`` flags keep the cycle out of every aggregate across cycles (it is counted as
    left out, with the flag's code); ``warning`` flags are shown but aggregated.

    Codes the measurement layer sets (stable):

    * ``adjusted_energy_nonpositive`` (warning): energy minus idle baseline x window is <= 0
      or under 2% of the raw energy (inside the baseline's own variation); the adjusted
      figures are null, the raw energy and ``energy_per_token_raw_j`` are kept, and the cycle
      stays in the aggregates, so a config can be summarised on the raw basis rather than on
      the subset of cycles whose adjusted figure happened to resolve.
    * ``window_too_short`` (untrusted): the window's quantisation error bound is above the
      source's target (the window did not reach K update periods).
    * ``gpu_contended`` (untrusted): another process used a measured GPU during the baseline
      or the window (sampled at the power-polling rate through both, not only at their ends).
    * ``machine_busy`` (warning): other processes used more than 10% of all CPU time during
      the window (or the idle baseline) of a CPU-side energy source, whose reading covers the whole host CPU
      (``energy.host_load``; measurement/host_load.py).
    * ``baseline_error_unresolvable`` (warning): the idle baseline's own error bound (counter
      quantisation over its idle period) x the window is not less than the adjusted energy.
    * ``gpu_process_unknown`` (warning): NVML listed a PID on a measured GPU that cannot be
      resolved here (missing from this PID namespace): ours under a host PID, or a foreign job.
    * ``energy_crosscheck_disagreement`` (untrusted): the energy counter and the integral of
      polled power disagree by more than the allowance.
    * ``mig_whole_gpu`` (warning): a MIG-enabled GPU was measured whole (config allowed it).
    * ``warmup_not_converged`` (warning): warmup ended at max_prompts without steady state.
    * ``energy_unavailable`` (warning): no energy could be read; throughput figures stand.
    * ``error_bound_unknown`` (warning): the source cannot say how often its reading updates.
    * ``serving_requests_failed`` (untrusted): requests of a served run failed or were not
      sent in the measured window; the energy covers a load that was not the one asked for.
    """

    code: str = Field(description="Stable identifier, e.g. adjusted_energy_nonpositive.")
    severity: Literal["warning", "untrusted"]
    message: str = Field(description="What was found and what it means, for people.")


class Timings(_Record):
    """How long each phase took, and when the experiment ran."""

    started_at: str
    finished_at: str
    total_s: float
    baseline_s: float
    model_load_s: float
    model_reused: bool
    import_s: float = Field(
        0.0,
        description="Importing the backend's libraries (torch, transformers, vllm, ...), timed "
        "apart from the model load; ~0 when the process had them already.",
    )
    warmup_s: float
    warmup_prompts: int
    warmup_converged: bool
    warmup_final_cv: float | None
    measured_window_s: float
    warmup_power_cv: float | None = Field(
        None, description="CV of power over the last window_size warmup batches (if sampled)."
    )
    warmup_converged_on: str | None = Field(
        None, description="What had to be steady: 'throughput' or 'throughput and power'."
    )
    measured_passes: int = Field(1, description="Whole passes over the prompts in the window.")
    host_lock: Literal["device", "node"] | None = Field(
        None,
        description="How the experiment shared its machine: node = alone (a node-wide energy "
        "source), device = beside experiments on other devices (see measurement/host_lock.py).",
    )
    host_wait_s: float = Field(
        0.0, description="Time spent waiting for other experiments on the machine to finish."
    )


class ServedRequest(_Record):
    """One request of a served run's measured window (seconds from its first arrival)."""

    arrival_s: float = Field(description="When the traffic pattern said it arrives.")
    sent_s: float = Field(description="When it was sent (later under max_concurrency).")
    input_tokens: int
    output_tokens: int
    requested_output_tokens: int | None = Field(None, description="max_tokens it asked for.")
    latency_s: float = Field(description="Last token (or failure) minus arrival.")
    ttft_s: float | None = Field(None, description="First token minus arrival (queue included).")
    tpot_s: float | None = Field(None, description="(last - first token) / (output - 1).")
    error: str | None = Field(None, description="Why it failed; None: it completed.")
    meets_slo: bool | None = Field(None, description="Within the SLO (None: no SLO set).")


class ServingSummary(_Record):
    """A served run: the server, the traffic it got, goodput, and every request.

    Token counts are the server's ``usage`` (``token_counts`` says when they were counted from
    the stream instead); times are client-side ``perf_counter`` stamps on the same machine.
    """

    server: dict[str, Any] = Field(
        description="mode (started | external), url, model_id, command, pid, ready_s, log_file."
    )
    traffic_mode: str
    requested_rate_rps: float | None = Field(
        None, description="The rate the traffic asked for (None: all at once)."
    )
    sent_rate_rps: float | None = Field(
        None, description="Requests sent / span of their send times, as achieved."
    )
    completed_rate_rps: float = Field(description="Completed requests / measured window.")
    max_concurrency: int | None = None
    requests_sent: int
    requests_completed: int
    requests_failed: int
    errors: list[str] = Field(default_factory=list, description="Distinct errors, first ten.")
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    goodput_requests: int | None = Field(None, description="Completed within the SLO.")
    goodput_fraction: float | None = Field(None, description="goodput_requests / sent.")
    goodput_rps: float | None = Field(None, description="goodput_requests / measured window.")
    token_counts: str = Field(
        "usage", description="usage (the server's) or chunks (counted from the stream)."
    )
    notes: list[str] = Field(default_factory=list)
    requests: list[ServedRequest] = Field(default_factory=list)


class ExperimentResult(_Record):
    """Everything about one experiment run."""

    schema_version: str = SCHEMA_VERSION
    experiment_id: str
    name: str
    llem_version: str
    config: dict[str, Any] = Field(description="The resolved config (defaults and presets filled).")
    config_hash: str
    environment: dict[str, Any]
    model: dict[str, Any] = Field(description="What was loaded, on which device, at which dtype.")
    metrics: Metrics
    energy: EnergyProvenance
    timings: Timings
    timeseries_file: str | None = None
    flags: list[QualityFlag] = Field(
        default_factory=list, description="Measurement-quality findings; see QualityFlag."
    )
    serving: ServingSummary | None = Field(
        None, description="Served runs only (a server: section): traffic, goodput, requests."
    )

    _saved_path: Path | None = PrivateAttr(None)

    @property
    def saved_path(self) -> Path | None:
        """Where :meth:`save` wrote this result (None before it did)."""
        return self._saved_path

    @property
    def untrusted(self) -> list[QualityFlag]:
        """The flags that keep this result out of aggregates."""
        return [f for f in self.flags if f.severity == "untrusted"]

    def save(self, directory: Path, *, timeseries_csv: str | None = None) -> Path:
        """Write ``directory/result.json`` (and the time series beside it); return its path.

        Never replaces a measurement: when a valid result is already there, this one is saved
        beside it as ``result.<UTC time>.json``; a damaged one is first renamed
        ``result.json.damaged-<time>``. When the directory cannot be written (full disk,
        read-only), the result goes to ``<cache>/unsaved/`` and a ResultWriteError says where.
        """
        try:
            return self._save_in(directory, timeseries_csv)
        except OSError as err:
            reason = err.strerror or str(err)
        name = re.sub(r"[^A-Za-z0-9._-]", "-", self.experiment_id).strip(".") or "result"
        fallback = default_cache_dir() / UNSAVED_DIR / f"{name}-{_stamp()}"
        try:
            saved = self._save_in(fallback, timeseries_csv)
        except OSError as err:
            raise ResultWriteError(
                f"the result could not be written to {directory} ({reason}) nor to {fallback} "
                f"({err.strerror or err})",
                fix="free disk space or fix permissions; the result is printed below",
                result_json=json_bytes(self.model_dump(mode="json")).decode(),
            ) from None
        raise ResultWriteError(
            f"the result could not be written to {directory}: {reason}",
            fix=f"it was saved to {saved} instead; copy it back once {directory} is writable",
            saved_to=saved,
        )

    def _save_in(self, directory: Path, timeseries_csv: str | None) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            stem = "" if _free_for_new(directory / RESULT_FILE) else f".{_stamp()}"
            path = directory / f"result{stem}.json"
            if timeseries_csv is not None:
                self.timeseries_file = f"timeseries{stem}.csv"
                write_bytes_new_or_aside(
                    directory / self.timeseries_file, timeseries_csv.encode("utf-8")
                )
            try:
                write_bytes_new(path, json_bytes(self.model_dump(mode="json")))
            except FileExistsError:  # another writer got there first: keep both
                continue
            self._saved_path = path
            return path
        raise FileExistsError(f"{directory}: no free result file name")


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _free_for_new(path: Path) -> bool:
    """True when ``path`` can take a new result: absent, or damaged (then renamed aside)."""
    if not path.exists():
        return True
    try:
        load_result(path)
    except LLEMError:
        os.replace(path, path.with_name(f"{path.name}.damaged-{_stamp()}"))
        return True
    return False


def write_bytes_new_or_aside(path: Path, data: bytes) -> None:
    """Create ``path``; an existing file there is renamed aside first, never replaced."""
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.previous-{_stamp()}"))
    write_bytes_new(path, data)


def load_result(path: Path) -> ExperimentResult:
    """Read a result.json (or the directory holding one), checking its schema version."""
    file = path / RESULT_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise LLEMError(f"cannot read result {file}: {type(err).__name__}: {err}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise LLEMError(
            f"{file} has result schema version {version!r}; this llem reads version {SCHEMA_VERSION}",
            fix="read it with the llem version that wrote it",
        )
    try:
        return ExperimentResult.model_validate(data)
    except ValidationError as err:
        raise LLEMError(f"{file} is not a valid result: {err.errors()[0]['msg']}") from None
