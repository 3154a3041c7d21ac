"""One experiment, measured the way an expert would.

environment snapshot -> model load (timed apart; the backend says which devices it uses) ->
energy source for exactly those devices -> warmup until throughput (and power, where the
source can read it) is steady -> idle baseline power with the model loaded, right before the
window, cached per device set and state -> the measured window (whole passes over the prompts
until it is long enough for the source's error bound; device synchronised at both ends) ->
metrics -> result with provenance and quality flags, written atomically.

A failure anywhere before the result is written leaves no result file behind.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llenergymeasure import __version__
from llenergymeasure.config.backends import BACKENDS
from llenergymeasure.config.identity import config_hash
from llenergymeasure.config.introspection import model_load_key
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.files import safe_name
from llenergymeasure.log import logger
from llenergymeasure.measurement import host_lock
from llenergymeasure.measurement.energy import (
    BaselineReading,
    EnergyOptions,
    EnergyReading,
    EnergySource,
    measure_baseline,
    select_energy_source,
)
from llenergymeasure.measurement.environment import collect_environment
from llenergymeasure.measurement.host_load import HostLoadSampler
from llenergymeasure.measurement.inference.base import InferenceBackend, ModelInfo
from llenergymeasure.measurement.inference.registry import create_backend, create_served_backend
from llenergymeasure.measurement.provenance import energy_provenance
from llenergymeasure.measurement.quality_flags import quality_flags
from llenergymeasure.measurement.run_metrics import window_metrics
from llenergymeasure.measurement.warmup import Warmup, run_warmup
from llenergymeasure.measurement.window import MeasuredWindow, measure_window
from llenergymeasure.results.schema import TIMESERIES_FILE, ExperimentResult, Metrics, Timings

Progress = Callable[[str], None]
_PROCESS_STARTED = time.time()  # with the PID, tells this process from a later one

BASELINE_WHEN = (
    "after model load and warmup, right before the measured window (model resident, device idle)"
)


class ModelPool:
    """Holds at most one loaded model and hands it out again while experiments share its load key.

    With ``reuse=False`` (cold start) every experiment loads afresh.
    """

    def __init__(self, *, reuse: bool = True) -> None:
        self.reuse = reuse
        self._backend: InferenceBackend | None = None
        self._info: ModelInfo | None = None
        self._key: tuple[Any, ...] | None = None

    def acquire(self, config: ExperimentConfig) -> tuple[InferenceBackend, ModelInfo, bool]:
        """A backend with the config's model loaded, and whether it was reused."""
        key = model_load_key(config)
        if self.reuse and self._backend is not None and self._info is not None and key == self._key:
            self._backend.prepare(config)
            return self._backend, self._info, True
        self.release()
        make = create_served_backend if config.server is not None else create_backend
        backend = make(config.backend)
        info = backend.load(config)
        self._backend, self._info, self._key = backend, info, key
        return backend, info, False

    def release(self) -> None:
        """Unload whatever is loaded."""
        if self._backend is not None:
            self._backend.unload()
        self._backend = self._info = self._key = None

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_experiment_id(config: ExperimentConfig, digest: str) -> str:
    """``<UTC time>_<name>_<hash8>``: sortable, readable, unique per run, and always a valid
    directory name (the name made safe and short, see :func:`safe_name`)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = config.name or f"{config.backend}_{config.model.name.rsplit('/', 1)[-1]}"
    return f"{stamp}_{safe_name(name.replace('_', '-'))}_{digest[:8]}"


def _device_state(source: EnergySource) -> list[dict[str, Any]] | None:
    """The measured devices' P-state, clocks and temperature now, if the source can tell."""
    read = getattr(source, "device_state", None)
    if read is None:
        return None
    try:
        state: list[dict[str, Any]] = read()
    except LLEMError as err:
        logger.warning("device state unavailable: {}", err.what)
        return None
    return state


def _temperature_bucket(value: Any) -> str:
    return "?" if not isinstance(value, (int, float)) else f"{int(value) // 10 * 10}s"


def baseline_scope(config: ExperimentConfig) -> str:
    """This process and the model it holds: a baseline is reused only by them unless
    ``baseline.reuse_across_runs`` (another process or model may leave the GPU otherwise)."""
    return f"process={os.getpid()}@{_PROCESS_STARTED}|model={model_load_key(config)}"


def _local_hhmm(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:
        return iso


def baseline_cache_key(
    info: ModelInfo, state: list[dict[str, Any]] | None, scope: str | None = None
) -> str:
    """The device set (UUIDs) and the state the baseline was taken in: model resident,
    P-state and temperature in 10 C steps per device (clocks follow the P-state), and the
    ``scope`` (see baseline_scope) when reuse is limited to it."""
    devices = ",".join(d.uuid or d.label for d in info.devices) or "devices unreported"
    parts = [f"devices={devices}", "model-resident", *([scope] if scope else [])]
    for entry in state or []:
        parts.append(
            f"{entry.get('uuid')}:{entry.get('pstate')}:{_temperature_bucket(entry.get('temperature_c'))}C"
        )
    return "|".join(parts)


def _timeseries_csv(reading: EnergyReading) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["t_s", "power_w", "temperature_c"])
    for sample in reading.samples:
        writer.writerow([f"{sample.t_s:.4f}", f"{sample.power_w:.3f}", sample.temperature_c])
    return buffer.getvalue()


def import_engine(backend: str) -> float:
    """Seconds to import ``backend``'s libraries (its spec's ``engine_modules``; ~0 when this
    process already has them), timed on their own, not hidden in the model load. One that
    fails to import is left to the backend, whose load says why."""
    started = time.perf_counter()
    spec = BACKENDS.get(backend)
    for module in spec.engine_modules if spec is not None else ():
        try:
            importlib.import_module(module)
        except Exception:  # the backend's load() turns this into one clear message
            break
    return time.perf_counter() - started


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _threads() -> dict[str, Any]:
    """The thread settings the window ran with: on a shared CPU they change timings many-fold."""
    import sys

    torch = sys.modules.get("torch")
    return {
        "torch_num_threads": torch.get_num_threads() if torch is not None else None,
        "torch_num_interop_threads": torch.get_num_interop_threads() if torch is not None else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
    }


@dataclass(frozen=True)
class _Prepared:
    """Everything set up before warmup: the engine imported, the model loaded, the energy
    source for its devices, the prompts."""

    import_s: float
    environment: dict[str, Any]
    backend: InferenceBackend
    info: ModelInfo
    reused: bool
    source: EnergySource
    prompts: list[str]
    warmup_prompts: list[str]


@dataclass(frozen=True)
class _Measured:
    warmup: Warmup
    baseline: BaselineReading | None
    baseline_s: float
    window: MeasuredWindow
    metrics: Metrics


def _prepare(config: ExperimentConfig, pool: ModelPool, say: Progress) -> _Prepared:
    say(f"importing {config.backend}'s libraries")
    import_s = import_engine(config.backend)
    say("environment")
    environment = collect_environment()  # after the import: torch can say if CUDA works
    say(f"loading {config.model.name} ({config.backend}, {config.fp_precision})")
    backend, info, reused = pool.acquire(config)
    options = EnergyOptions.for_experiment(config, info.devices or None)
    source = select_energy_source(config.energy.source, options)
    prompts, warmup_prompts = _prompts(config, backend)
    return _Prepared(import_s, environment, backend, info, reused, source, prompts, warmup_prompts)


def _prompts(config: ExperimentConfig, backend: InferenceBackend) -> tuple[list[str], list[str]]:
    """The measured prompts, and warmup's own (another seed: warmup never sees them)."""
    from llenergymeasure.measurement.datasets import load_prompts

    tokenizer = backend.tokenizer()
    prompts = load_prompts(
        config.dataset,
        tokenizer=tokenizer,
        max_input_tokens=config.max_input_tokens,
        seed=config.random_seed,
    )
    if not config.warmup.enabled:
        return prompts, []
    warmup_prompts = load_prompts(
        config.dataset,
        tokenizer=tokenizer,
        max_input_tokens=config.max_input_tokens,
        seed=config.random_seed + 1,
        count=config.warmup.prompt_limit,
    )
    return prompts, warmup_prompts


def _idle_baseline(
    config: ExperimentConfig, run: _Prepared, say: Progress
) -> BaselineReading | None:
    """Idle power with the model resident, in the state the window will start in (cached)."""
    if not config.baseline.enabled:
        return None
    source = run.source
    run.backend.synchronize()
    state = _device_state(source)
    scope = None if config.baseline.reuse_across_runs else baseline_scope(config)
    baseline = measure_baseline(
        source,
        config.baseline.duration_sec,
        ttl_sec=config.baseline.cache_ttl_sec,
        cache_key=baseline_cache_key(run.info, state, scope),
        when=BASELINE_WHEN,
        state=state,
        read_state=lambda: _device_state(source),
        host=HostLoadSampler() if getattr(source, "covers_host_cpu", False) else None,
        on_measure=lambda: say(
            f"idle baseline ({config.baseline.duration_sec:g} s, {source.name})"
        ),
    )
    if baseline.from_cache:
        say(f"idle baseline cached from {_local_hhmm(baseline.measured_at)}")
    return baseline


def _measure(config: ExperimentConfig, run: _Prepared, say: Progress) -> _Measured:
    """Warmup -> idle baseline -> measured window -> metrics (the model still loaded)."""
    say(f"warmup (up to {len(run.warmup_prompts)} prompts)")
    warmup = run_warmup(
        run.backend, config, run.warmup_prompts, getattr(run.source, "power_now_w", None)
    )
    baseline_started = time.perf_counter()
    baseline = _idle_baseline(config, run, say)
    baseline_s = time.perf_counter() - baseline_started
    say(f"measuring {len(run.prompts)} prompts")
    load_before = _load_average()
    window = measure_window(run.backend, run.source, config, run.prompts)
    run.environment["load_average_1m"] = {
        "window_start": load_before,
        "window_end": _load_average(),
    }
    run.environment["threads"] = _threads()
    metrics = window_metrics(window, baseline, run.info, run.backend, config)
    return _Measured(warmup, baseline, baseline_s, window, metrics)


def _result(
    config: ExperimentConfig,
    experiment_id: str,
    digest: str,
    run: _Prepared,
    measured: _Measured,
    timings: Timings,
) -> ExperimentResult:
    info, warmup, window = run.info, measured.warmup, measured.window
    energy = energy_provenance(window, measured.baseline, run.source)
    return ExperimentResult(
        experiment_id=experiment_id,
        name=config.name or experiment_id,
        llem_version=__version__,
        config=config.model_dump(mode="json"),
        config_hash=digest,
        environment=run.environment,
        model={
            "source": info.source,
            "device": info.device,
            "dtype": info.dtype,
            "num_parameters": info.num_parameters,
            "non_embedding_parameters": info.non_embedding_parameters,
            "devices": [d.to_dict() for d in info.devices],
            "notes": [*info.notes, *warmup.notes],
        },
        metrics=measured.metrics,
        energy=energy,
        timings=timings,
        flags=quality_flags(measured.metrics, energy, warmup, measured.baseline, config),
        timeseries_file=TIMESERIES_FILE
        if window.reading is not None and window.reading.samples
        else None,
    )


def _timings(
    started_at: str, started: float, run: _Prepared, measured: _Measured, host: host_lock.HostLock
) -> Timings:
    """Where the run's time went, each phase timed apart from the measured window."""
    warmup, window = measured.warmup, measured.window
    return Timings(
        started_at=started_at,
        finished_at=_now(),
        total_s=time.perf_counter() - started,
        baseline_s=measured.baseline_s,
        import_s=run.import_s,
        model_load_s=0.0 if run.reused else run.info.load_time_s,
        model_reused=run.reused,
        warmup_s=warmup.seconds,
        warmup_prompts=warmup.prompts,
        warmup_converged=warmup.converged,
        warmup_final_cv=warmup.final_cv,
        measured_window_s=window.seconds,
        warmup_power_cv=warmup.power_cv,
        warmup_converged_on=warmup.converged_on,
        measured_passes=window.passes,
        host_wait_s=host.waited_s,
        host_lock=host.scope,
    )


def run_experiment(
    config: ExperimentConfig,
    output_dir: Path,
    *,
    experiment_id: str | None = None,
    models: ModelPool | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Measure one experiment and write ``output_dir/<experiment_id>/result.json``."""
    say = progress or (lambda _message: None)
    started_at, started = _now(), time.perf_counter()
    digest = config_hash(config)
    experiment_id = experiment_id or default_experiment_id(config, digest)
    pool = models or ModelPool(reuse=False)

    host = host_lock.acquire(host_lock.energy_scope(config.energy.source), say)
    try:
        run = _prepare(config, pool, say)
        measured = _measure(config, run, say)
    finally:
        if models is None:
            pool.release()
        host.release()
    timings = _timings(started_at, started, run, measured, host)
    result = _result(config, experiment_id, digest, run, measured, timings)
    window = measured.window
    if config.server is not None:  # a served run: traffic, goodput, requests, server log
        from llenergymeasure.measurement.serving.summary import attach_serving

        attach_serving(result, run.backend, window, config, output_dir / experiment_id)
    series = (
        _timeseries_csv(window.reading)
        if result.timeseries_file and window.reading is not None
        else None
    )
    result.save(output_dir / experiment_id, timeseries_csv=series)
    return result
