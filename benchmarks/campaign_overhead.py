"""What the campaign runner itself costs, measured side by side in one run.

1. Orchestration overhead: campaign wall time minus what the experiments had to spend
   (measured windows + model loads + idle baselines + warmups + configured gaps), as a share
   of wall time (target <= 5%). Printed twice: with the harness's own bookkeeping inside each
   experiment (environment snapshot, prompt loading, metrics; what the target counts) and with
   only the runner's (manifest writes, planning, statistics and tables).
2. Model reuse vs ``cold_start.force_cold_start``: the same campaign, alternated run by run so
   machine noise hits both alike; wall time of each and the ratio.
3. With ``--ray``: 6 configs x 2 cycles on one model, on the ray executor (``address: local``,
   warm workers, one at a time) alternated with the in-process executor (model reuse). Per
   experiment wall = (campaign wall - cluster start - final tables) / experiments, for each;
   target: ray within 1.2x of in-process. Everything that is not a measured window counts as
   cost (imports, model loads, scheduling, waits, the result's trip back); the worker's one-off
   start (its imports and first model load) is shown apart. Measured 2026-12-04 (2 shared
   cores): per-experiment wall 0.903 s on ray against 0.813 s in-process: 1.11x with torch's
   import already paid in-process, 0.91x when each pays it once (target <= 1.2x; with a fresh
   worker per run, before warm workers, imports and loads cost 27-112 s per experiment under
   load); cluster start 3.7 s once per campaign.

On the built-in model, CPU, energy source ``estimate``. The machine may be shared: read the
ratios, not the absolute seconds.

Run: .venv/bin/python benchmarks/campaign_overhead.py [--repeats 2] [--cycles 2] [--ray]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CAMPAIGN = """\
campaign_name: overhead-bench
base_config:
  model: builtin:tiny-gpt2
  fp_precision: float32
  max_output_tokens: 16
  dataset: {{name: builtin:prompts, num_prompts: 8}}
  pytorch: {{batch_size: 4}}
  warmup: {{max_prompts: 12, min_prompts: 2}}
  baseline: {{enabled: true, duration_sec: 0.3, cache_ttl_sec: 0}}
  energy: {{source: estimate}}
grid:
  backends: [pytorch]
  shared:
    max_output_tokens: {tokens}
execution:
  cycles: {cycles}
  structure: interleaved
  config_gap_seconds: 0.2
  cycle_gap_seconds: 0.5
  executor: {executor}
  ray: {{address: local, max_parallel: 1}}
cold_start:
  force_cold_start: {cold}
"""


THREE = [8, 16, 24]
SIX = [8, 12, 16, 20, 24, 28]


def run_once(
    root: Path,
    *,
    cycles: int,
    cold: bool,
    executor: str = "inprocess",
    tokens: list[int] = THREE,
) -> dict[str, Any]:
    from llenergymeasure.config.loader import load_campaign_config
    from llenergymeasure.orchestration.campaign.experiments import plan_campaign
    from llenergymeasure.orchestration.campaign.prepare import prepare_campaign
    from llenergymeasure.orchestration.campaign.runner import CampaignRunner
    from llenergymeasure.results.schema import load_result

    tag = executor if executor != "inprocess" else "cold" if cold else "reuse"
    file = root / f"{tag}-{time.monotonic_ns()}.yaml"
    file.write_text(
        CAMPAIGN.format(cycles=cycles, cold=str(cold).lower(), executor=executor, tokens=tokens)
    )
    out = root / file.stem
    started = time.perf_counter()
    campaign = load_campaign_config(file)
    plan = prepare_campaign(campaign, plan_campaign(campaign, file), out, campaign_file=file)
    runner_executor, connect_s = None, 0.0
    if executor == "ray":  # the cluster's start, timed apart: once per campaign, any size
        from llenergymeasure.orchestration.executors import create_executor

        runner_executor = create_executor("ray", config=campaign.execution.ray, reuse_models=True)
        connect_s = time.perf_counter() - started
    outcome = CampaignRunner(plan, executor=runner_executor).run()
    wall = time.perf_counter() - started
    assert outcome.status == "completed", outcome
    results = [load_result(p) for p in out.glob("*/result.json")]
    parts = {
        "measured windows": sum(r.timings.measured_window_s for r in results),
        "model loads": sum(r.timings.model_load_s for r in results),
        "idle baselines": sum(r.timings.baseline_s for r in results),
        "warmups": sum(r.timings.warmup_s for r in results),
        "configured gaps": outcome.gaps_s,
        "waits for the machine": sum(r.timings.host_wait_s for r in results),
    }
    harness_total = sum(r.timings.total_s for r in results)
    return {
        "wall": wall,
        "connect": connect_s,
        "worker_start": max(r.timings.import_s + r.timings.model_load_s for r in results),
        "export": outcome.export_s,
        "release": outcome.release_s,
        "parts": parts,
        "harness_total": harness_total,
        "runs": len(results),
        "reused": sum(r.timings.model_reused for r in results),
        "host_wait": parts["waits for the machine"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each mode (alternated).")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="Also the ray executor (needs ray).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llem-campaign-bench-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("LLEM_CACHE_DIR", str(root / "cache"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from llenergymeasure.measurement.models.builtin import ensure_builtin

        ensure_builtin("builtin:tiny-gpt2")  # built once, not timed
        imports_s = _import_seconds()
        import torch  # noqa: F401  (imported once per process in a real campaign too)
        import transformers  # noqa: F401

        run_once(root, cycles=1, cold=False)  # warm caches and allocator, not reported
        reuse, cold, ray, six = [], [], [], []
        for _ in range(args.repeats):
            reuse.append(run_once(root, cycles=args.cycles, cold=False))
            cold.append(run_once(root, cycles=args.cycles, cold=True))
            if args.ray:
                six.append(run_once(root, cycles=2, cold=False, tokens=SIX))
                ray.append(run_once(root, cycles=2, cold=False, executor="ray", tokens=SIX))

    best = min(reuse, key=lambda r: r["wall"])
    wall = best["wall"]
    accounted = sum(best["parts"].values())
    print(
        f"campaign: 3 configs x {args.cycles} cycles = {best['runs']} experiments, model reuse on"
    )
    print(f"  wall time                                   {wall:8.3f} s")
    for name, seconds in best["parts"].items():
        print(f"  {name:<43} {seconds:8.3f} s  ({seconds / wall:6.1%})")
    overhead = wall - accounted
    harness_other = best["harness_total"] - (accounted - best["parts"]["configured gaps"])
    # waits for the machine (another process measuring node-wide energy) are in harness_total
    export = best["export"]
    release = best["release"]
    loop = overhead - harness_other - export - release
    print(
        f"orchestration overhead = wall - (windows + loads + baselines + warmups + gaps + waits) "
        f"= {overhead:.3f} s = {overhead / wall:.1%} of wall (target <= 5%), made of:"
    )
    print(f"  harness bookkeeping (environment, prompts, metrics) {harness_other:7.3f} s")
    print(f"  final statistics (bootstrap CIs) and tables, once  {export:7.3f} s")
    print(f"  model release at the end (gc), once                {release:7.3f} s")
    print(
        f"  runner loop (plan, manifest writes, dispatch)      {loop:7.3f} s"
        f" = {loop / best['runs'] * 1000:.0f} ms per experiment"
    )
    once = export + release
    print(
        f"  without the one-off costs (statistics, release): {(overhead - once) / wall:.1%} of "
        f"wall; runner loop alone: {loop / wall:.1%}"
    )

    reuse_wall = min(r["wall"] for r in reuse)
    cold_wall = min(r["wall"] for r in cold)
    cold_loads = min(r["parts"]["model loads"] for r in cold)
    reuse_loads = min(r["parts"]["model loads"] for r in reuse)
    print("model reuse vs force_cold_start (best of alternated runs):")
    print(
        f"  reuse: wall {reuse_wall:7.3f} s, model loads {reuse_loads:6.3f} s, "
        f"{best['reused']}/{best['runs']} reused   (all: "
        + ", ".join(f"{r['wall']:.2f}" for r in reuse)
        + ")"
    )
    print(
        f"  cold:  wall {cold_wall:7.3f} s, model loads {cold_loads:6.3f} s, 0 reused"
        + "   (all: "
        + ", ".join(f"{r['wall']:.2f}" for r in cold)
        + ")"
    )
    print(f"  ratio cold / reuse wall = {cold_wall / reuse_wall:.2f}x")
    if ray:
        _print_ray(ray, six, imports_s)
    print("note: a shared machine; read the ratios, and rerun when the 'all' columns disagree")


def _import_seconds() -> float:
    """``import torch, transformers`` in a fresh interpreter: what a ``llem campaign run``
    process pays once before its first in-process experiment (a Ray worker pays it inside)."""
    code = "import time; t = time.perf_counter(); import torch, transformers; "
    code += "print(time.perf_counter() - t)"
    return float(subprocess.check_output([sys.executable, "-c", code], text=True).strip())


def _per_experiment(run: dict[str, Any]) -> float:
    """Campaign wall less the once-per-campaign parts (cluster start, final tables), per run."""
    return (run["wall"] - run["connect"] - run["export"] - run["release"]) / run["runs"]


def _print_ray(
    ray: list[dict[str, Any]], inprocess: list[dict[str, Any]], imports_s: float
) -> None:
    best_ray = min(ray, key=_per_experiment)
    best_in = min(inprocess, key=_per_experiment)
    ray_s, in_s = _per_experiment(best_ray), _per_experiment(best_in)
    runs = best_ray["runs"]
    print(f"ray executor (address local, warm workers, 1 at a time) vs in-process, {runs} runs:")
    for label, run, per in (("in-process", best_in, in_s), ("ray", best_ray, ray_s)):
        windows = run["parts"]["measured windows"]
        cost = run["wall"] - run["connect"] - run["export"] - run["release"] - windows
        print(
            f"  {label:<10} per-experiment wall {per:6.3f} s; not measurement (imports, loads, "
            f"scheduling, waits) {cost / run['runs']:6.3f} s per experiment; "
            f"{run['reused']}/{run['runs']} reused   (all: "
            + ", ".join(
                f"{_per_experiment(r):.2f}" for r in (ray if run is best_ray else inprocess)
            )
            + ")"
        )
    like = in_s + imports_s / runs
    print(
        f"  ray / in-process per-experiment wall = {ray_s / like:.2f}x (target <= 1.2x), each "
        f"paying torch's and transformers' import once ({imports_s:.2f} s, in a fresh "
        f"interpreter, added to in-process's {runs} runs); {ray_s / in_s:.2f}x against "
        f"in-process with the import already paid; ray's extra cost {ray_s - like:+.3f} s per "
        "experiment"
    )
    print(
        f"  once per campaign, not in the ratio: cluster start {best_ray['connect']:.2f} s; in the "
        f"ratio: the worker's start (imports + first model load) {best_ray['worker_start']:.2f} s"
    )


if __name__ == "__main__":
    main()
