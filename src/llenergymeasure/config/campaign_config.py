"""CampaignConfig: a grid (and/or explicit list) of experiments plus how to run them.

The grid's own schema and checks live in :mod:`grid_config`; this module holds the rest of the
campaign file (explicit experiments, execution, statistics, schedule, io, notify).
"""

# No `from __future__ import annotations`: pydantic would compile every field's annotation
# back from its string when the class is built (a few ms of `llem campaign validate`).
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from llenergymeasure.config._base import StrictModel, factory
from llenergymeasure.config.grid_config import CampaignGridConfig, GridGroup, check_axes, key_error
from llenergymeasure.config.models import MAX_SECONDS, ExperimentConfig
from llenergymeasure.config.text import PlainText
from llenergymeasure.config.urls import redact_url, webhook_problem

_FIXED_OK: set[tuple[str, type, Any]] = set()
"""(key, type, value) pairs already found valid: thousands of explicit experiments repeat them."""


def check_fixed_values(values: dict[str, Any]) -> None:
    """Keys and values of a partial experiment (base_config, overrides, an experiment file)."""
    for key, value in values.items():
        if isinstance(value, list):
            raise key_error(
                (key,),
                f"'{key}' is a list; fixed values cannot be lists; fix: make it an axis under grid.shared",
            )
        try:
            known: tuple[str, type, Any] | None = (key, type(value), value)
            if known in _FIXED_OK:
                continue
        except TypeError:  # a dict value: checked every time
            known = None
        check_axes({key: value}, ExperimentConfig, ())
        if known is not None and len(_FIXED_OK) < 100_000:
            _FIXED_OK.add(known)


class ExplicitExperiment(StrictModel):
    """One experiment listed by hand: an experiment YAML plus overrides."""

    config: PlainText | None = Field(
        None, description="Path to an experiment YAML, relative to the campaign file."
    )
    overrides: dict[str, Any] = Field(
        default_factory=factory(dict), description="Dotted key -> value, applied on top."
    )

    @field_validator("overrides")
    @classmethod
    def _check_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        check_fixed_values(overrides)
        return overrides


class ThermalWaitConfig(StrictModel):
    """Wait for the GPU to cool between experiments (needs NVML)."""

    enabled: bool = True
    max_temperature_c: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(300.0, ge=0, le=MAX_SECONDS)


MAX_CYCLES = 10_000
"""Upper bound of cycles: the plan holds one entry per experiment and cycle."""

Structure = Literal["interleaved", "shuffled", "grouped", "balanced"]
"""The run orders ``execution.structure`` offers (orchestration/campaign/order.py builds them)."""

AdaptiveMetric = Literal["energy_per_token_j", "tokens_per_second", "latency_p50_s"]
"""What adaptive cycles watch: J/token (default), tokens/s or median latency."""

CIMethod = Literal["student_t", "bootstrap"]
"""What ``statistics.ci_method`` may ask for."""

BOOTSTRAP_MIN_CYCLES = 30
"""The bootstrap (BCa) interval is offered from this many cycles. Measured (docs/statistics.md,
2,000 trials, normal and lognormal, CV 5% and 30%): 88-90% coverage at n = 10, 90.5-93.7% at
20, 92.9-94.9% at 30, 93.5-94.5% at 50, against a nominal 95%."""


class RayConfig(StrictModel):
    """Where and how wide the ``ray`` executor runs (``execution.executor: ray``)."""

    address: str = Field(
        "local",
        min_length=1,
        description="local: start a Ray instance on this machine, bound to 127.0.0.1, stopped "
        "at the end; auto: the cluster this machine belongs to (RAY_ADDRESS or `ray start`); or "
        "host:port of a running head node.",
    )
    max_parallel: int | None = Field(
        None,
        ge=1,
        description="Most experiments in flight at once (None: as many as the cluster's GPUs, or "
        "CPUs for CPU runs, allow).",
    )
    gpus_per_experiment: int | Literal["auto"] = Field(
        "auto",
        description="GPUs each experiment asks Ray for; auto: its tensor x pipeline parallel "
        "size when the cluster has GPUs, 0 when it has none.",
    )
    cpus_per_experiment: float = Field(1.0, gt=0, description="CPUs each experiment asks for.")

    @field_validator("gpus_per_experiment")
    @classmethod
    def _check_gpus(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("gpus_per_experiment must be >= 0 or auto")
        return value


MAX_EXPERIMENTS = 10_000
"""Default of ``execution.max_experiments``: the largest plan run without ``--allow-large``."""


class ExecutionConfig(StrictModel):
    """How many cycles, in which order, with which gaps.

    Adaptive cycles: with ``target_ci_pct`` set, every config first runs ``min_cycles`` (default
    ``cycles``); their spread fixes how many cycles in all it needs for a 95% CI of
    ``target_metric`` within ``target_ci_pct`` percent of its mean, at least two more and at most
    ``max_cycles`` (a two-stage design: ``orchestration/campaign/adaptive.py``).
    """

    cycles: int = Field(
        3,
        ge=1,
        le=MAX_CYCLES,
        description="Repetitions of the whole experiment list (3: the fewest for a usable CI).",
    )
    structure: Structure = Field(
        "interleaved",
        description="interleaved: A B C A B C; shuffled: seeded, per cycle; grouped: A A B B; "
        "balanced: a Williams design (positions and predecessors counterbalanced across cycles).",
    )
    seed: int = Field(42, description="Seed for the shuffled order (and balanced labels).")
    target_ci_pct: float | None = Field(
        None,
        gt=0,
        lt=100,
        description="Adaptive cycles: run as many cycles of a config as its first min_cycles "
        "call for to bring the 95% CI half-width of target_metric within this percent of its "
        "mean (a two-stage design, at most max_cycles).",
    )
    target_metric: AdaptiveMetric = Field(
        "energy_per_token_j", description="The metric whose CI target_ci_pct bounds."
    )
    min_cycles: int | None = Field(
        None,
        ge=2,
        le=MAX_CYCLES,
        description="Adaptive: cycles every config runs first (default: cycles).",
    )
    max_cycles: int | None = Field(
        None,
        ge=2,
        le=MAX_CYCLES,
        description="Adaptive: the most cycles a config may run, at least min_cycles + 2 "
        "(default: 10).",
    )
    config_gap_seconds: float = Field(
        0.0, ge=0, le=MAX_SECONDS, description="Pause between experiments."
    )
    cycle_gap_seconds: float = Field(0.0, ge=0, le=MAX_SECONDS, description="Pause between cycles.")
    executor: Literal["inprocess", "subprocess", "ray"] = Field(
        "inprocess",
        description="Where experiments run: inprocess (reuses loaded models), subprocess (a "
        "fresh process each), ray (a Ray cluster, several at once; see execution.ray).",
    )
    ray: RayConfig = Field(default_factory=factory(RayConfig))
    max_consecutive_failures: int | None = Field(
        5, ge=1, description="Stop after this many failures in a row."
    )
    experiment_timeout_seconds: float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="Upper bound for one experiment."
    )
    thermal_wait: ThermalWaitConfig = Field(default_factory=factory(ThermalWaitConfig))
    max_experiments: int = Field(
        MAX_EXPERIMENTS,
        ge=1,
        description="llem campaign run refuses a plan of more experiments than this (after "
        "showing its size and estimated duration) unless run with --allow-large: a typo in a "
        "grid can multiply it by 100.",
    )

    @model_validator(mode="after")
    def _check_adaptive(self) -> "ExecutionConfig":
        if self.target_ci_pct is None:
            for key in ("min_cycles", "max_cycles"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} only applies to adaptive cycles; fix: set target_ci_pct "
                        f"(e.g. 5 for +/- 5%) or remove {key}"
                    )
            return self
        explicit = "cycles" in self.model_fields_set
        if self.min_cycles is not None and explicit and self.min_cycles != self.cycles:
            raise ValueError(
                f"cycles ({self.cycles}) and min_cycles ({self.min_cycles}) disagree; "
                "fix: with target_ci_pct set, give min_cycles only"
            )
        if self.first_cycles < 2:
            raise ValueError(
                "adaptive cycles need at least 2 cycles before the first decision; "
                "fix: set min_cycles (or cycles) to 2 or more"
            )
        if self.cycle_limit < self.first_cycles:
            raise ValueError(
                f"max_cycles ({self.cycle_limit}) is below min_cycles ({self.first_cycles}); "
                "fix: raise max_cycles"
            )
        if self.cycle_limit < self.first_cycles + 2:
            raise ValueError(
                f"max_cycles ({self.cycle_limit}) leaves fewer than 2 cycles after min_cycles "
                f"({self.first_cycles}): the adaptive interval is computed from the cycles after "
                f"the first stage; fix: set max_cycles to {self.first_cycles + 2} or more"
            )
        return self

    @property
    def adaptive(self) -> bool:
        """Whether extra cycles are decided by the CI target."""
        return self.target_ci_pct is not None

    @property
    def first_cycles(self) -> int:
        """Cycles every config runs (the whole plan when not adaptive)."""
        return self.min_cycles if self.adaptive and self.min_cycles is not None else self.cycles

    @property
    def cycle_limit(self) -> int:
        """The most cycles a config can run."""
        if not self.adaptive:
            return self.cycles
        return self.max_cycles if self.max_cycles is not None else max(10, self.first_cycles + 2)


class StatisticsConfig(StrictModel):
    """How the summary's intervals are computed."""

    ci_method: CIMethod = Field(
        "student_t",
        description="student_t: mean +/- t(0.975, n-1) s/sqrt(n), sound at every n >= 2; "
        f"bootstrap: BCa, offered from {BOOTSTRAP_MIN_CYCLES} cycles (a config left with fewer "
        "usable cycles gets Student-t, said so in its row).",
    )


class ColdStartConfig(StrictModel):
    """Model reuse between consecutive experiments on the same model/backend/precision."""

    force_cold_start: bool = Field(False, description="Load the model afresh for every experiment.")


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ScheduleConfig(StrictModel):
    """Daemon mode: start at a time of day, repeat cycles at an interval, stop after a duration."""

    at: str | None = Field(None, description="Start time HH:MM (local).")
    interval_seconds: float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="Time between cycle starts."
    )
    total_duration_seconds: float | None = Field(
        None, gt=0, description="Stop starting cycles after this."
    )

    @field_validator("at")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError(f"'{value}' is not a time of day; fix: use HH:MM, e.g. 02:30")
        return value


class IOConfig(StrictModel):
    """Where results go."""

    results_dir: PlainText = Field(
        "results", description="Campaign output directory (overridden by -o)."
    )


class NotifyConfig(StrictModel):
    """Optional webhook called when the campaign completes or fails."""

    webhook_url: str | None = Field(
        None, description="http(s) URL POSTed a JSON summary; shown redacted everywhere."
    )
    on: list[Literal["completion", "failure"]] = Field(["completion", "failure"])

    @field_validator("webhook_url")
    @classmethod
    def _http_only(cls, url: str | None) -> str | None:
        problem = webhook_problem(url) if url is not None else None
        if problem:
            raise PydanticCustomError(
                "webhook_url",
                "{url} cannot be a webhook: {problem}; use an http:// or https:// URL",
                {"url": redact_url(url or ""), "problem": problem},
            )
        return url


class CampaignConfig(StrictModel):
    """A whole campaign file."""

    campaign_name: PlainText = Field(..., min_length=1)
    base_config: dict[str, Any] | PlainText = Field(
        default_factory=factory(dict),
        description="Inline experiment fields, or a path to an experiment YAML.",
    )
    grid: CampaignGridConfig | None = None
    experiments: list[ExplicitExperiment] = Field(default_factory=factory(list))
    execution: ExecutionConfig = Field(default_factory=factory(ExecutionConfig))
    statistics: StatisticsConfig = Field(default_factory=factory(StatisticsConfig))
    cold_start: ColdStartConfig = Field(default_factory=factory(ColdStartConfig))
    schedule: ScheduleConfig = Field(default_factory=factory(ScheduleConfig))
    io: IOConfig = Field(default_factory=factory(IOConfig))
    notify: NotifyConfig = Field(default_factory=factory(NotifyConfig))

    @field_validator("base_config")
    @classmethod
    def _check_base(cls, base: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(base, dict):
            check_fixed_values(base)
        return base

    @model_validator(mode="after")
    def _something_to_run(self) -> "CampaignConfig":
        if self.grid is None and not self.experiments:
            raise ValueError(
                "the campaign has neither a grid nor experiments; fix: add a 'grid:' section"
            )
        limit = self.execution.cycle_limit
        if self.statistics.ci_method == "bootstrap" and limit < BOOTSTRAP_MIN_CYCLES:
            what = "max_cycles" if self.execution.adaptive else "cycles"
            raise ValueError(
                f"statistics.ci_method: bootstrap needs at least {BOOTSTRAP_MIN_CYCLES} cycles "
                f"and execution.{what} is {limit} (with fewer the bootstrap covers the true mean "
                f"far less than 95% of the time); fix: set execution.{what} to "
                f"{BOOTSTRAP_MIN_CYCLES} or more, or use ci_method: student_t"
            )
        return self


__all__ = [
    "BOOTSTRAP_MIN_CYCLES",
    "MAX_EXPERIMENTS",
    "AdaptiveMetric",
    "CIMethod",
    "CampaignConfig",
    "CampaignGridConfig",
    "ColdStartConfig",
    "ExecutionConfig",
    "ExplicitExperiment",
    "GridGroup",
    "IOConfig",
    "NotifyConfig",
    "ScheduleConfig",
    "StatisticsConfig",
    "Structure",
    "ThermalWaitConfig",
]
