"""How llem scales with the campaign, as growth ratios measured in one run.

1. Manifest update cost at 1e2 / 1e4 / 1e5 entries: the journal (one appended, fsync'd line per
   update, plus the snapshot's cost spread over the updates between compactions) against
   rewriting the whole manifest per update (what it did before the journal).
2. ``llem campaign validate`` (plain and ``--json``) and ``llem campaign run --dry-run`` on
   grids of 1e4 / 1e5 (and with ``--max-points 1000000``, 1e6) points: wall time and peak RSS
   (the process's own ``VmHWM``) of each, as ratios to plain validate and as growth.

A shared machine: read the ratios, not the absolute times.

Run: .venv/bin/python benchmarks/scale_bench.py [--max-points 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the grid and the peak probe are the scale test's

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-points", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llem-scale-") as tmp:
        root = Path(tmp)
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
