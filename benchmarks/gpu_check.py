"""The project's own GPU check: what no fake can prove, checked on one real NVIDIA GPU.

Prints one ``PASS``/``FAIL``/``SKIP`` line per check:

* ``llem run`` on ``builtin:tiny-gpt2`` with pytorch on CUDA and the NVML source: exactly the
  model's GPU measured (by UUID), window long enough for the error bound, adjusted energy
  > 0, no untrusted flag, counter vs polled power, the time series' integral vs the counter,
  the baseline taken in the window's state, the environment's GPU settings and CPU governor;
* the same ``llem run`` with vLLM and with TensorRT-LLM when their packages are importable
  (SKIP with the reason otherwise);
* then, in this process (which held no CUDA context during the runs, so it is not "another
  process on the GPU" to them): every CUDA device found in NVML by its torch UUID, one device
  measured, the energy counter's update period, and counter energy vs the integral of
  instant power on a bf16 matmul load.

No network; about 2 minutes on an H100/H200 without the engines, never more than 7 (a run
that would overrun the budget is skipped, and says so).
Exit codes: 0 every check passed (SKIPs allowed), 1 some check failed, 2 a package the check
needs is missing here (see Preparation), 3 no NVIDIA GPU here (one line says why).

Preparation, on any machine with PyPI (the CUDA image has torch, transformers,
nvidia-ml-py, typer, rich, psutil and pyyaml but not these; pydantic-core is a compiled
wheel, hence the platform and ABI tags; versions as in the project's tested environment)::

    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --abi cp312 --platform manylinux2014_x86_64 -d .gpu-wheels \\
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \\
        typing-inspection==0.4.5 typing-extensions==4.16.0 loguru==0.7.3
    pip install --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --abi cp312 --platform manylinux2014_x86_64 --target .gpu-wheels/site .gpu-wheels/*.whl

(``.gpu-wheels/`` is git-ignored; carry it with the working tree.) Run on the GPU machine,
from the repository root, with nothing installed::

    PYTHONPATH=src:.gpu-wheels/site python benchmarks/gpu_check.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED, EXIT_MISSING, EXIT_NO_GPU = 1, 2, 3
TOTAL_BUDGET_S = 420.0  # well under the 8 minutes a device session may give this check
TORCH_CHECKS_S = 60.0  # kept back for the in-process checks after the runs
RUN_TIMEOUT_S = 240.0  # one `llem run`; vLLM's engine start is the slow one
RUN_MIN_S = 120.0  # less time than this left: skip the run rather than time it out
MATMUL_S = 6.0
MATMUL_SIZE = 8192
MAX_UPDATE_PERIOD_S = 0.2  # NVML documents ~20-100 ms; slower means the probe misread it
LOAD_ABOVE_IDLE_W = 50.0  # a bf16 matmul loop on a datacentre GPU draws far more than this
NEEDED = (
    *("torch", "transformers", "pydantic", "pydantic_core", "loguru", "yaml", "typer"),
    *("rich", "psutil", "llenergymeasure"),
)
BACKEND_PACKAGES = {"vllm": "vllm", "tensorrt": "tensorrt_llm"}


def no_gpu_reason() -> str | None:
    """Why this machine has no NVIDIA GPU NVML can see, or None when it has one."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py (pynvml) is not installed, so NVML cannot be asked"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return f"NVML did not start ({err})"
    try:
        count = int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as err:
        return f"NVML could not count GPUs ({err})"
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return None if count else "NVML found no device"


class Report:
    """Prints each check's line as it finishes and counts the outcomes."""

    def __init__(self) -> None:
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.outcomes: dict[str, str] = {}  # check name -> status

    def line(self, status: str, name: str, detail: str) -> None:
        self.counts[status] += 1
        self.outcomes[name] = status
        print(f"{status} {name}: {detail}", flush=True)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.line("PASS" if ok else "FAIL", name, detail)
        return ok

    def skip(self, name: str, why: str) -> None:
        self.line("SKIP", name, why)

    def guarded(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one check; an exception is that check's FAIL, never the end of the run."""
        try:
            return fn()
        except Exception as err:
            render = getattr(err, "render", None)
            self.line(
                "FAIL", name, render() if callable(render) else f"{type(err).__name__}: {err}"
            )
            return None


def check_device_mapping(report: Report, torch: Any) -> Any:
    """Every CUDA device found in NVML by the UUID torch reports; returns cuda:0's ref."""
    import pynvml

    from llenergymeasure.devices.base import cuda_device_ref

    refs = [cuda_device_ref(torch, i) for i in range(torch.cuda.device_count())]
    mapped, problems = [], []
    pynvml.nvmlInit()
    try:
        for ref in refs:
            if ref.uuid is None:
                problems.append(f"cuda:{ref.cuda_index} has no UUID in torch")
                continue
            handle = pynvml.nvmlDeviceGetHandleByUUID(ref.uuid)
            index = int(pynvml.nvmlDeviceGetIndex(handle))
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name != ref.name:
                problems.append(f"cuda:{ref.cuda_index} is '{ref.name}' in torch, '{name}' in NVML")
            mapped.append(f"cuda:{ref.cuda_index} -> NVML {index} ({ref.uuid})")
    finally:
        pynvml.nvmlShutdown()
    ok = report.check(
        "device mapping by UUID",
        bool(mapped) and not problems,
        "; ".join(mapped + problems) or "torch reports no CUDA device",
    )
    return refs[0] if ok else None


def check_one_device(report: Report, ref: Any) -> None:
    from llenergymeasure.measurement.energy.nvml import NVMLEnergySource

    labels = NVMLEnergySource(devices=(ref,)).devices
    report.check(
        "one device measured",
        len(labels) == 1 and labels[0].startswith("cuda:0 "),
        f"the NVML source for cuda:0 measures {list(labels)}",
    )


def check_update_period(report: Report, ref: Any) -> None:
    from llenergymeasure.measurement.energy.nvml import NVMLEnergySource

    source = NVMLEnergySource(devices=(ref,))
    source.start()
    reading = source.stop()
    period, how = reading.update_period_s, reading.update_period_method or ""
    report.check(
        "counter update period",
        reading.method == "counter"
        and how.startswith("measured")
        and period is not None
        and 0 < period <= MAX_UPDATE_PERIOD_S,
        f"{(period or 0) * 1000:.1f} ms, {reading.method}, {how}",
    )


def check_counter_vs_instant_power(report: Report, torch: Any, ref: Any) -> None:
    """A bf16 matmul loop inside one NVML window: the counter sees the load, and the
    integral of instant power agrees with it within the cross-check's allowance."""
    from llenergymeasure.measurement.energy.crosscheck import crosscheck_allowance_pct
    from llenergymeasure.measurement.energy.nvml import NVMLEnergySource

    source = NVMLEnergySource(devices=(ref,), sample_interval_ms=20)
    idle_w = source.power_now_w()
    device = f"cuda:{ref.cuda_index}"
    a = torch.randn((MATMUL_SIZE, MATMUL_SIZE), device=device, dtype=torch.bfloat16)
    b = torch.randn((MATMUL_SIZE, MATMUL_SIZE), device=device, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    source.start()
    deadline = time.perf_counter() + MATMUL_S
    while time.perf_counter() < deadline:
        for _ in range(10):
            c = a @ b
        torch.cuda.synchronize()
    reading = source.stop()
    del a, b, c
    torch.cuda.empty_cache()
    mean_w = reading.mean_power_w or 0.0
    report.check(
        "matmul load seen by the counter",
        mean_w > idle_w + LOAD_ABOVE_IDLE_W,
        f"{mean_w:.0f} W over {reading.duration_s:.2f} s against {idle_w:.0f} W idle",
    )
    polled = reading.polled_energy_j or 0.0
    disagreement = 100.0 * abs(polled - reading.energy_j) / reading.energy_j
    allowance = crosscheck_allowance_pct(reading) or 0.0
    report.check(
        "counter vs instant-power integral",
        (reading.power_method or "").startswith("instant") and disagreement <= allowance,
        f"counter {reading.energy_j:.1f} J, polled {polled:.1f} J ({reading.polled_samples} "
        f"samples): {disagreement:.2f}% apart, allowed {allowance:.1f}%; {reading.power_method}",
    )


def run_config(backend: str) -> str:
    section = "pytorch: {device: cuda, batch_size: 16}\n" if backend == "pytorch" else ""
    return (
        textwrap.dedent(
            f"""\
        name: gpu-check-{backend}
        model: builtin:tiny-gpt2
        backend: {backend}
        fp_precision: bfloat16
        max_input_tokens: 128
        max_output_tokens: 64
        dataset: {{name: builtin:prompts, num_prompts: 64}}
        warmup: {{max_prompts: 96}}
        baseline: {{duration_sec: 3, cache_ttl_sec: 0}}
        energy: {{source: nvml}}
        timeseries: {{enabled: true, sample_interval_ms: 50}}
        """
        )
        + section
    )


def llem_run(backend: str, work: Path, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    """``llem run`` in a fresh process (as a user runs it); (saved result, error text)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "experiment.yaml"
    config.write_text(run_config(backend))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLEM_CACHE_DIR": str(work / "cache")}
    command = [sys.executable, "-c", "from llenergymeasure.cli.app import main; main()"]
    try:
        done = subprocess.run(
            [*command, "run", str(config), "-o", str(work / "results"), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None, f"no result within {timeout_s:.0f} s"
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return None, f"exit {done.returncode}: {tail or done.stdout.strip()[-300:]}"
    saved = list((work / "results").glob("*/result.json"))  # engines may log on stdout too
    if len(saved) != 1:
        return None, f"exit 0 but {len(saved)} result.json files under {work / 'results'}"
    return json.loads(saved[0].read_text()), ""


def timeseries_energy_j(work: Path) -> tuple[float, int] | None:
    """The trapezoid integral of the run's timeseries.csv, and its number of samples."""
    from llenergymeasure.measurement.energy.base import trapezoid_energy_j

    files = list((work / "results").glob("*/timeseries.csv"))
    if len(files) != 1:
        return None
    with files[0].open() as handle:
        rows = [(float(r["t_s"]), float(r["power_w"])) for r in csv.DictReader(handle)]
    return trapezoid_energy_j([t for t, _ in rows], [p for _, p in rows]), len(rows)


def model_uuids(result: dict[str, Any]) -> list[str | None]:
    """The GPUs the backend says the model ran on (UUIDs read from torch in the run)."""
    return [d.get("uuid") for d in result["model"]["devices"] if d.get("kind") == "cuda"]


def check_result(report: Report, backend: str, result: dict[str, Any], work: Path) -> None:
    """The checks every backend's measurement must pass."""
    e, m = result["energy"], result["metrics"]
    tag = f"llem run {backend}"
    measured = [d.get("uuid") for d in e["device_info"]]
    model = model_uuids(result)
    report.check(
        f"{tag}: attribution",
        e["source"] == "nvml"
        and e["method"] == "counter"
        and bool(model)
        and None not in model
        and measured == model,
        f"{e['source']}/{e['method']} measured {measured}; the model ran on {model}",
    )
    report.check(
        f"{tag}: window long enough",
        (e["window_s"] or 0) >= (e["required_window_s"] or 0)
        and (e["update_period_method"] or "").startswith("measured")  # not probe_timeout
        and e["error_bound_pct"] is not None
        and e["error_bound_pct"] <= (e["target_error_pct"] or 0),
        f"{e['window_s']:.2f} s in {e['passes']} pass(es), needed {e['required_window_s']:.2f} s; "
        f"error bound {e['error_bound_pct']:.3f}% (target {e['target_error_pct']}%)",
    )
    adjusted = m["energy_adjusted_j"]
    report.check(
        f"{tag}: adjusted energy",
        adjusted is not None and adjusted > 0,
        f"raw {m['energy_j']:.2f} J, adjusted {adjusted} J, baseline {e['baseline_power_w']:.1f} W, "
        f"{m['energy_per_token_j']} J/token"
        + (f"; {m['energy_adjusted_null_reason']}" if m["energy_adjusted_null_reason"] else ""),
    )
    untrusted = [
        f"{f['code']}: {f['message']}" for f in result["flags"] if f["severity"] == "untrusted"
    ]
    warnings = [f["code"] for f in result["flags"] if f["severity"] == "warning"]
    report.check(
        f"{tag}: no untrusted flag",
        not untrusted,
        "; ".join(untrusted) or f"warnings: {warnings or 'none'}",
    )
    report.check(
        f"{tag}: no other or unresolved GPU process",
        not e["other_processes"] and not e.get("unknown_processes"),
        f"others {[p['pid'] for p in e['other_processes']]}, unresolved "
        f"{[p['pid'] for p in e.get('unknown_processes') or []]} (sampled through the window)",
    )
    check = e["crosscheck"]
    report.check(
        f"{tag}: counter vs polled power",
        check is not None and check["disagreement_pct"] <= check["allowance_pct"],
        "no cross-check recorded"
        if check is None
        else f"{check['disagreement_pct']:.2f}% apart, allowed {check['allowance_pct']:.1f}%",
    )
    series = timeseries_energy_j(work)
    if series is None:
        report.check(f"{tag}: time series vs counter", False, "no single timeseries.csv written")
        return
    series_j, rows = series
    window = e["window_s"] or 1.0
    allowed = 10.0 + 100.0 * ((e["update_period_s"] or 0) + 0.05) / window
    apart = 100.0 * abs(series_j - m["energy_j"]) / m["energy_j"]
    report.check(
        f"{tag}: time series vs counter",
        apart <= allowed,
        f"integral of {rows} samples {series_j:.2f} J vs counter {m['energy_j']:.2f} J: "
        f"{apart:.2f}% apart, allowed {allowed:.1f}%",
    )


def check_baseline_state(report: Report, result: dict[str, Any]) -> None:
    e = result["energy"]
    baseline = e["baseline"] or {}
    during = [s.get("pstate") for s in baseline.get("state") or []]  # read mid-idle period
    window = [s.get("pstate") for s in e["state_start"]]
    report.check(
        "baseline in the window's state",
        "after model load and warmup" in (baseline.get("when") or "")
        and bool(during)
        and None not in during
        and during == window
        and baseline.get("error_bound_pct") is not None,
        f"baseline {baseline.get('power_w')} W (error bound {baseline.get('error_bound_pct')}%) "
        f"at P-states {during} during the idle period, window starts at {window}; "
        f"{baseline.get('when')}",
    )


def check_environment(report: Report, result: dict[str, Any]) -> None:
    """Each GPU setting of the model's GPU and the CPU governor: a value, or null with the
    reason."""
    env = result["environment"]
    uuid = (model_uuids(result) or [None])[0]
    gpu = next((g for g in env["gpus"] if uuid is not None and g.get("uuid") == uuid), None)
    if gpu is None:
        report.check("environment fields", False, f"no GPU {uuid} in the environment record")
        return
    why = gpu.get("unavailable") or {}
    keys = ["persistence_mode", "ecc_mode", "mig_mode", "pstate", "power_limit_w"]
    keys += ["enforced_power_limit_w"]
    values = {k: gpu.get(k) for k in keys}
    values |= {f"clocks_mhz.{k}": v for k, v in (gpu.get("clocks_mhz") or {}).items()}
    unexplained = [k for k, v in values.items() if v is None and k not in why]
    governor = env["cpu"].get("frequency") or {}
    governor_ok = bool(governor.get("governor") or governor.get("unavailable_reason"))
    device = str(result["model"]["device"])
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    report.check(
        "environment fields",
        len(values) == len(keys) + 6
        and not unexplained
        and governor_ok
        and device.startswith("cuda"),
        f"{shown}; cpu governor {governor.get('governor') or governor.get('unavailable_reason')}"
        f"; model on {device}" + (f"; null without a reason: {unexplained}" if unexplained else ""),
    )


def check_torch_checks(report: Report) -> None:
    """The checks that use torch in this process: mapping, update period, matmul."""
    import torch

    if not torch.cuda.is_available():
        report.check(
            "device mapping by UUID",
            False,
            f"torch {torch.__version__} cannot use CUDA although NVML sees a GPU (a CPU build?)",
        )
        return
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
    ref = report.guarded("device mapping by UUID", lambda: check_device_mapping(report, torch))
    if ref is None:
        return
    report.guarded("one device measured", lambda: check_one_device(report, ref))
    report.guarded("counter update period", lambda: check_update_period(report, ref))
    report.guarded(
        "counter vs instant-power integral",
        lambda: check_counter_vs_instant_power(report, torch, ref),
    )


def check_backend(report: Report, backend: str, work: Path, left_s: float) -> None:
    """One ``llem run`` with ``backend`` and the checks on its result (pytorch: also the
    baseline state and the environment record)."""
    package = BACKEND_PACKAGES.get(backend)
    name = f"llem run {backend}"
    if package is not None and importlib.util.find_spec(package) is None:
        report.skip(name, f"{package} is not importable here")
        return
    if left_s < RUN_MIN_S:
        report.skip(name, f"{left_s:.0f} s left of the check's time budget")
        return
    result, error = llem_run(backend, work, min(RUN_TIMEOUT_S, left_s))
    if result is None:
        report.check(name, False, error)
        return
    report.guarded(name, lambda: check_result(report, backend, result, work))
    if backend == "pytorch":
        report.guarded(
            "baseline in the window's state", lambda: check_baseline_state(report, result)
        )
        report.guarded("environment fields", lambda: check_environment(report, result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The project's own GPU check (see the top).")
    parser.add_argument("--keep", type=Path, help="Keep the llem run results in this folder.")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    reason = no_gpu_reason()
    if reason is not None:
        print(f"no NVIDIA GPU: {reason}")
        return EXIT_NO_GPU
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"missing packages: {', '.join(missing)} (see Preparation at the top of "
            "benchmarks/gpu_check.py; run with PYTHONPATH=src:.gpu-wheels/site)"
        )
        return EXIT_MISSING
    report = Report()
    # `llem run` first, while this process holds no CUDA context: NVML would list one as
    # another process on the GPU, and the runs would rightly be flagged as contended.
    work = args.keep or Path(tempfile.mkdtemp(prefix="llem-gpu-check-"))
    try:
        for backend in ("pytorch", *BACKEND_PACKAGES):
            left_s = TOTAL_BUDGET_S - TORCH_CHECKS_S - (time.perf_counter() - started)
            check_backend(report, backend, work / backend, left_s)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report.guarded("torch and NVML", lambda: check_torch_checks(report))
    c = report.counts
    print(
        f"gpu_check: {c['PASS']} PASS, {c['FAIL']} FAIL, {c['SKIP']} SKIP in "
        f"{time.perf_counter() - started:.0f} s" + (f"; results in {work}" if args.keep else "")
    )
    return EXIT_FAILED if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
