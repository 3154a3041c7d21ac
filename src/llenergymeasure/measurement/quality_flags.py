"""What limits how far a result can be trusted: each limit a flag with a code, a severity and
a message that says what to do about it."""

from __future__ import annotations

from typing import Literal

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.energy import BaselineReading
from llenergymeasure.measurement.host_load import BUSY_OTHER_SHARE_PCT, machine_busy
from llenergymeasure.measurement.warmup import Warmup
from llenergymeasure.results.schema import EnergyProvenance, Metrics, QualityFlag


class _Flags(list[QualityFlag]):
    """The flags raised so far, in the order they were found."""

    def add(self, code: str, severity: Literal["warning", "untrusted"], message: str) -> None:
        self.append(QualityFlag(code=code, severity=severity, message=message))


def quality_flags(
    metrics: Metrics,
    energy: EnergyProvenance,
    warmup: Warmup,
    baseline: BaselineReading | None,
    config: ExperimentConfig,
) -> list[QualityFlag]:
    """What limits how far this result can be trusted (codes: see QualityFlag), in a fixed
    order: the energy figure, other processes, the baseline's resolution, a busy host, the
    GPU reading itself, warmup."""
    flags = _Flags()
    _energy_figure(flags, metrics, energy)
    _other_processes(flags, energy, baseline)
    _baseline_resolution(flags, metrics, energy, baseline)
    _busy_host(flags, energy, baseline)
    _gpu_reading(flags, energy)
    _warmup(flags, warmup, config)
    return list(flags)


def _energy_figure(flags: _Flags, metrics: Metrics, energy: EnergyProvenance) -> None:
    """No reading, no adjusted figure, or a window too short for (or unknown to) its bound."""
    if energy.unavailable_reason:
        flags.add(
            "energy_unavailable", "warning", f"no energy reading: {energy.unavailable_reason}"
        )
    if metrics.energy_adjusted_null_reason:
        # a warning, not untrusted: the raw energy stands, and dropping these cycles would
        # leave the config summarised on the subset whose baseline happened to be lower
        flags.add("adjusted_energy_nonpositive", "warning", metrics.energy_adjusted_null_reason)
    bound, target = energy.error_bound_pct, energy.target_error_pct
    if energy.unavailable_reason is None:
        if bound is not None and target is not None and bound > target * 1.001:
            flags.add(
                "window_too_short",
                "untrusted",
                f"the {energy.window_s or 0:.3g} s window has a quantisation error bound of "
                f"{bound:.2g}% (update period {(energy.update_period_s or 0) * 1000:.0f} ms), "
                f"above the {target:g}% target; lengthen it (energy.min_window_s) or allow a "
                "larger error (energy.max_error_pct)",
            )
        elif bound is None and target is not None:
            flags.add(
                "error_bound_unknown",
                "warning",
                f"the {energy.source} source's update period is not known "
                f"({energy.update_period_method or 'the source does not report it'}), so its "
                "quantisation error is not bounded",
            )


def _other_processes(
    flags: _Flags, energy: EnergyProvenance, baseline: BaselineReading | None
) -> None:
    """Another process on a measured GPU, in the window or the baseline: its energy counts."""
    others = list(energy.other_processes)
    if baseline is not None:
        others += [{**p, "seen": "during the baseline"} for p in baseline.other_processes]
    if others:
        pids = sorted({int(p["pid"]) for p in others})
        flags.add(
            "gpu_contended",
            "untrusted",
            f"other processes used a measured GPU (pids {', '.join(map(str, pids))}): their "
            "energy is in the reading",
        )


def _baseline_resolution(
    flags: _Flags, metrics: Metrics, energy: EnergyProvenance, baseline: BaselineReading | None
) -> None:
    """The baseline's own error over this window is not smaller than the adjusted energy."""
    adjusted = metrics.energy_adjusted_j
    if baseline is not None and baseline.error_bound_pct is not None and adjusted is not None:
        spread_j = baseline.power_w * baseline.error_bound_pct / 100.0 * (energy.window_s or 0)
        if spread_j >= adjusted:
            flags.add(
                "baseline_error_unresolvable",
                "warning",
                f"the idle baseline's own error bound ({baseline.error_bound_pct:.2g}% counter "
                f"quantisation over its {baseline.duration_s:.3g} s) is {spread_j:.4g} J over "
                f"this window, not less than the adjusted energy {adjusted:.4g} J: lengthen "
                "baseline.duration_sec; the raw energy stands",
            )


def _busy_host(flags: _Flags, energy: EnergyProvenance, baseline: BaselineReading | None) -> None:
    """Other processes kept the host CPU busy during the baseline or the window."""
    if baseline is not None and machine_busy(baseline.host_load):
        flags.add(
            "machine_busy",
            "warning",
            "other processes used "
            f"{(baseline.host_load or {}).get('other_cpu_share_pct', 0):.0f}% of all CPU time "
            "while the idle baseline was taken: it is not an idle baseline of the whole host CPU",
        )
    if machine_busy(energy.host_load):
        load = energy.host_load or {}
        flags.add(
            "machine_busy",
            "warning",
            f"other processes used {load['other_cpu_share_pct']:.0f}% of all CPU time during "
            f"the window (worst {load['other_cpu_share_max_pct']:.0f}%, above "
            f"{BUSY_OTHER_SHARE_PCT:g}%; load average {load['load_average_1m_min']}-"
            f"{load['load_average_1m_max']}): the {energy.source} energy covers the whole host "
            "CPU, so their work is in it, and throughput may be slowed",
        )


def _gpu_reading(flags: _Flags, energy: EnergyProvenance) -> None:
    """PIDs that cannot be placed, a counter and polled power that disagree, a MIG GPU whole."""
    if energy.unknown_processes:
        pids = sorted({int(p["pid"]) for p in energy.unknown_processes})
        flags.add(
            "gpu_process_unknown",
            "warning",
            f"NVML listed PID(s) {', '.join(map(str, pids))} on a measured GPU that do not "
            "exist in this PID namespace: this process under its host PID (a container whose "
            "driver does not translate PIDs) or another job, whose energy would be in the "
            "reading",
        )
    check = energy.crosscheck
    if (
        check is not None
        and check["allowance_pct"] is not None
        and check["disagreement_pct"] > check["allowance_pct"]
    ):
        flags.add(
            "energy_crosscheck_disagreement",
            "untrusted",
            f"energy counter {check['counter_j']:.4g} J vs integral of polled power "
            f"{check['polled_j']:.4g} J: {check['disagreement_pct']:.1f}% apart, more than "
            f"the {check['allowance_pct']:.1f}% allowed; one of them is not seeing the load",
        )
    if energy.mig_whole_gpu:
        flags.add(
            "mig_whole_gpu",
            "warning",
            "a MIG-enabled GPU was measured whole: every instance and tenant on it is counted",
        )


def _warmup(flags: _Flags, warmup: Warmup, config: ExperimentConfig) -> None:
    """Warmup ended without the steady state it was looking for."""
    if warmup.prompts and config.warmup.convergence_detection and not warmup.converged:
        flags.add(
            "warmup_not_converged",
            "warning",
            f"warmup ended after {warmup.prompts} prompts without steady {warmup.converged_on} "
            f"(CV {f'{warmup.final_cv:.1%}' if warmup.final_cv is not None else 'n/a'})",
        )
