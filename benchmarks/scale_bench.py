"""How llem scales with the campaign, as growth ratios measured in one run.

1. Manifest update cost at 1e2 / 1e4 / 1e5 entries: the journal (one appended, fsync'd line per
   update, plus the snapshot's cost spread over the updates between compactions) against
   rewriting the whole manifest per update (what it did before the journal).
2. ``llem campaign validate`` (plain and ``--json``) and ``llem campaign run --dry-run`` on
   grids of 1e4 / 1e5 (and with ``--max-points 1000000``, 1e6) points: wall time and peak RSS
   (the process's own ``VmHWM``) of each, as ratios to plain validate and as growth.

3. A real ``run_campaign`` (not dry) of n configs x 3 cycles, n = 1e2 / 1e4 / 1e5, each in its
   own process on an executor double that writes a valid result at once (``FastExecutor``):
   time from process start to the first experiment, the runner's own time per experiment (the
   loop's wall minus the executor's, over the first 200), time from SIGTERM (sent once 200 ran)
   to the process's exit, the child's peak RSS (VmHWM), and the manifest reloaded and counted.
   Measured 2026-12-04 (2 shared cores): first experiment 0.41 / 1.02 / 5.83 s (target <= 10 s);
   runner 0.94 / 0.89 / 1.08 ms per experiment (1e5 / 1e2: 1.16x, target <= 2x); SIGTERM exit
   0.18 / 0.17 / 0.82 s; peak RSS 45 / 63 / 250 MiB (target < 400 MiB; 813 MiB before the
   manifest entries became slotted dataclasses and the first snapshot was streamed at its
   peak); manifest consistent at every size (200 completed, 1 interrupted, the rest pending).

A shared machine: read the ratios, not the absolute times.

Run: .venv/bin/python benchmarks/scale_bench.py [--max-points 100000] [--only run]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the grid and the peak probe are the scale test's
sys.path.insert(0, str(ROOT / "tests"))  # its helpers import the shared fakes

from tests.cli.scale_grid import peak_command, write_grid  # noqa: E402


def manifest_update_cost(n: int, root: Path, updates: int = 200) -> tuple[float, float, float]:
    """(journal append s/update, amortised snapshot s/update, whole rewrite s/update)."""
    from llenergymeasure.orchestration.campaign.manifest import (
        COMPACT_AFTER,
        Manifest,
        ManifestEntry,
    )

    directory = root / f"m{n}"
    directory.mkdir()
    manifest = Manifest(
        campaign_name="scale",
        design_hash="d",
        created_at="t",
        updated_at="t",
        cycles=1,
        structure="interleaved",
        seed=0,
        executor="inprocess",
        entries=[
            ManifestEntry(
                exp_id=f"exp{i}_c1", name=f"exp{i}", config_hash=f"{i:064x}", backend="pytorch",
                cycle=1,
            )
            for i in range(n)
        ],
    )  # fmt: skip
    started = time.perf_counter()
    manifest.save(directory)
    snapshot = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(updates):
        entry = manifest.entries[i % n]
        entry.attempts += 1
        manifest.save(directory, [entry])
    appended = (time.perf_counter() - started) / updates
    return appended, snapshot / max(COMPACT_AFTER, n), snapshot


def grid_file(points: int, root: Path) -> Path:
    """Three axes whose product is ``points`` (as square as divisors allow)."""
    b = 10 if points >= 1000 else 1
    return write_grid(root / f"grid{points}.yaml", 10, b, points // (10 * b))


def measure(args: list[str], root: Path) -> tuple[float, float]:
    """(wall s, peak RSS MiB: the process's own VmHWM) of one llem process."""
    peak = root / "peak"
    command, env = peak_command(args, peak)
    started = time.perf_counter()
    code = subprocess.call(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - started
    if code not in (0, 1):
        raise SystemExit(f"llem {' '.join(args)} failed ({code})")
    return wall, int(peak.read_text()) / 1024


RUN_CYCLES = 3
RUN_K = 200
"""Experiments timed per campaign before SIGTERM (the loop is timed over the first ``K``)."""


class FastExecutor:
    """An executor double that writes a valid result at once: what is left of a campaign's wall
    time is the runner's own. Once ``stop_after`` experiments ran, the next one sends this
    process SIGTERM (as ``kill`` would) and never returns."""

    name = "fake"

    def __init__(self, stop_after: int, figures: dict[str, Any]) -> None:
        from tests.orchestration.campaign.helpers import make_result

        self.template = make_result("x_c1", "x", "0" * 64)
        self.stop_after, self.figures = stop_after, figures
        self.ran, self.inside_s, self.first = 0, 0.0, None

    def run(self, task: Any, progress: Any = None) -> Any:
        from llenergymeasure.orchestration.executors.base import ExecutionOutcome

        entered = time.perf_counter()  # the import below is cached after the first run
        if self.first is None:
            self.first = entered
            self.figures["first_started_at"] = time.time()
        if self.ran == self.stop_after:
            self.figures["loop_s"] = entered - self.first
            self.figures["backend_s"] = self.inside_s
            self.figures["sigterm_at"] = time.time()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)  # the handler raises in this thread first
        result = self.template.model_copy(
            update={
                "experiment_id": task.exp_id,
                "name": task.name,
                "config_hash": task.config_hash,
            }
        )
        result.save(task.output_dir / task.exp_id)
        self.ran += 1
        self.inside_s += time.perf_counter() - entered
        return ExecutionOutcome("completed", result_path=task.result_path, result=result)

    def close(self) -> None:
        pass


def run_child(file: Path, directory: Path, stop_after: int, figures_file: Path) -> int:
    """``run_campaign`` (not dry) on the fast executor until SIGTERM; figures to a JSON file
    as this process exits, its own peak RSS (VmHWM) among them."""
    import atexit

    figures: dict[str, Any] = {}

    def write() -> None:
        status = Path("/proc/self/status").read_text().splitlines()
        figures["peak_kib"] = int(next(x for x in status if x.startswith("VmHWM")).split()[1])
        figures_file.write_text(json.dumps(figures))

    atexit.register(write)
    from llenergymeasure.orchestration.campaign.runner import run_campaign

    outcome = run_campaign(
        file,
        directory,
        executor=FastExecutor(stop_after, figures),
        export_formats=("csv",),
        temperatures=dict,  # no GPU to wait for
        log_to_file=False,
    )
    figures["exit_code"] = outcome.exit_code
    return outcome.exit_code


def run_campaign_once(n: int, root: Path) -> dict[str, Any]:
    """Start a real campaign of ``n`` configs x RUN_CYCLES in its own process, SIGTERM it after
    RUN_K experiments, and check its manifest: the figures of :func:`run_section`."""
    from llenergymeasure.orchestration.campaign.manifest import load_manifest

    file = grid_file(n, root)
    file.write_text(file.read_text() + f"execution:\n  cycles: {RUN_CYCLES}\n")
    directory, figures_file = root / f"run{n}", root / f"run{n}.json"
    command = [sys.executable, __file__, "--run-child", str(file), str(directory), str(RUN_K)]
    started = time.time()
    code = subprocess.call([*command, str(figures_file)], stdout=subprocess.DEVNULL)
    ended = time.time()
    figures: dict[str, Any] = json.loads(figures_file.read_text())
    loaded = load_manifest(directory)
    counts = loaded.counts() if loaded is not None else {}
    consistent = (
        counts.get("completed") == RUN_K
        and counts.get("interrupted") == 1
        and counts.get("running") == 0
        and counts.get("pending") == n * RUN_CYCLES - RUN_K - 1
        and loaded is not None
        and loaded.status == "interrupted"
    )
    return {
        "first_s": figures["first_started_at"] - started,
        "runner_ms": 1e3 * (figures["loop_s"] - figures["backend_s"]) / RUN_K,
        "stop_s": ended - figures["sigterm_at"],
        "peak_mib": figures["peak_kib"] / 1024,
        "exit": code,
        "consistent": consistent,
        "counts": counts,
    }


def run_section(root: Path, sizes: list[int]) -> None:
    print(
        f"run (n configs x {RUN_CYCLES} cycles, fake fast executor, SIGTERM after {RUN_K} "
        "experiments; targets at 1e5: first experiment <= 10 s, peak RSS < 400 MiB, runner "
        "time per experiment <= 2x 1e2's, SIGTERM exit <= 10 s with the manifest consistent):"
    )
    rows = {n: run_campaign_once(n, root) for n in sizes}
    for n, row in rows.items():
        print(
            f"  {n:>7} configs ({n * RUN_CYCLES:>7} runs): first experiment {row['first_s']:6.2f} s; "
            f"runner {row['runner_ms']:6.2f} ms/experiment; stop {row['stop_s']:5.2f} s "
            f"(exit {row['exit']}); peak RSS {row['peak_mib']:6.0f} MiB; manifest "
            + ("consistent" if row["consistent"] else f"INCONSISTENT {row['counts']}")
        )
    small, large = rows[sizes[0]], rows[sizes[-1]]
    print(
        f"  runner time per experiment {sizes[-1]} / {sizes[0]}: "
        f"{large['runner_ms'] / small['runner_ms']:.2f}x (target <= 2x)"
    )


def main() -> None:
    if sys.argv[1:2] == ["--run-child"]:
        file, directory, stop_after, figures = sys.argv[2:6]
        raise SystemExit(run_child(Path(file), Path(directory), int(stop_after), Path(figures)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-points", type=int, default=100_000)
    parser.add_argument(
        "--only", choices=("run",), help="only the run section (default: every section)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llem-scale-") as tmp:
        root = Path(tmp)
        if args.only in (None, "run"):
            run_section(root, [n for n in (100, 10_000, 100_000) if n <= args.max_points])
        if args.only == "run":
            return
        print("manifest update cost (per update):")
        rows = {n: manifest_update_cost(n, root) for n in (100, 10_000, 100_000)}
        for n, (append, amortised, rewrite) in rows.items():
            print(
                f"  {n:>7} entries: journal {1e3 * (append + amortised):7.3f} ms "
                f"(append {1e3 * append:.3f} + snapshot share {1e3 * amortised:.3f}); "
                f"whole rewrite {1e3 * rewrite:9.3f} ms"
            )
        small, large = rows[100], rows[100_000]
        print(
            f"  growth 1e2 -> 1e5: journal {sum(large[:2]) / sum(small[:2]):.2f}x (target <= 2x), "
            f"whole rewrite {large[2] / small[2]:.0f}x"
        )
        print(
            "planning (wall s min over repeats, peak RSS MiB; targets at 1e6: < 200 MiB, "
            "dry-run <= 1.3x validate):"
        )
        sizes = [p for p in (10_000, 100_000, 1_000_000) if p <= args.max_points]
        seen: dict[int, dict[str, tuple[float, float]]] = {}
        for points in sizes:
            file = grid_file(points, root)
            commands = {
                "validate": ["campaign", "validate", str(file)],
                "validate --json": ["campaign", "validate", str(file), "--json"],
                "run --dry-run": ["campaign", "run", str(file), "-o", str(root / "o"), "--dry-run"],
            }
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
            for _ in range(3 if points <= 100_000 else 1):  # interleaved: noise hits all alike
                for name, command in commands.items():
                    runs[name].append(measure(command, root))
            seen[points] = best = {name: min(found) for name, found in runs.items()}
            plain = best["validate"][0]
            print(
                f"  {points:>8} points: "
                + "; ".join(
                    f"{name} {wall:6.2f} s {rss:5.0f} MiB ({wall / plain:.2f}x validate)"
                    for name, (wall, rss) in best.items()
                )
            )
        if len(sizes) >= 2:
            first, last = sizes[0], sizes[-1]
            print(
                f"  {first} -> {last} points ({last / first:.0f}x): "
                + "; ".join(
                    f"{name} time {seen[last][name][0] / seen[first][name][0]:.1f}x, RSS "
                    f"{seen[last][name][1] / seen[first][name][1]:.1f}x"
                    for name in seen[first]
                )
            )
    print("note: a shared machine; read the ratios")


if __name__ == "__main__":
    main()
