"""ExperimentResult: one measured experiment, saying how every number was obtained.

Versioned (``schema_version``) so readers can refuse what they do not understand. Energy figures
always travel with their ``EnergyProvenance``: the method (counter, polling, rapl, estimate,
...), devices, sample interval, window and baseline; an estimate is flagged as one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.exceptions import LLEMError
from llenergymeasure.files import write_json_atomic

SCHEMA_VERSION = "1"
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
        description="energy_j minus baseline power x measured window (None without a baseline)."
    )
    energy_per_token_j: float | None = Field(
        description="Per output token; basis says which energy."
    )
    energy_per_request_j: float | None
    energy_basis: str | None = Field(description="'adjusted' (baseline subtracted) or 'raw'.")
    tokens_per_joule: float | None
    mean_power_w: float | None
    latency_s: Percentiles = Field(description="Per request: end minus arrival (or batch start).")
    ttft_s: Percentiles | None = Field(None, description="Time to first token (streaming only).")
    itl_s: Percentiles | None = Field(None, description="Inter-token latency (streaming only).")
    peak_memory_bytes: int | None
    peak_memory_method: str
    flops: float | None
    flops_method: str


class QualityFlag(_Record):
    """Something the measurement layer found that limits how far a number can be trusted.

    ``untrusted`` flags keep the cycle out of every aggregate across cycles (it is counted as
    left out, with the flag's code); ``warning`` flags are shown but aggregated.
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
    warmup_s: float
    warmup_prompts: int
    warmup_converged: bool
    warmup_final_cv: float | None
    measured_window_s: float


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

    @property
    def untrusted(self) -> list[QualityFlag]:
        """The flags that keep this result out of aggregates."""
        return [f for f in self.flags if f.severity == "untrusted"]

    def save(self, directory: Path) -> Path:
        """Write ``directory/result.json`` atomically and return its path."""
        path = directory / RESULT_FILE
        write_json_atomic(path, self.model_dump(mode="json"))
        return path


def load_result(path: Path) -> ExperimentResult:
    """Read a result.json (or the directory holding one), checking its schema version."""
    file = path / RESULT_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LLEMError(f"cannot read result {file}: {err}") from None
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
