"""How fast ``llem`` starts, against ``python -c pass`` in the same run (interleaved).

Targets (issue 15), measured on an idle machine where ``python -c pass`` took 11 ms: ``llem
--help`` <= 80 ms and ``llem campaign validate examples/campaign.yaml`` <= 150 ms. Machines
differ, so the targets are printed as ratios to the bare interpreter (about 7.3x and 13.6x).

Each case runs the way an installed user sees it: bytecode caching on (this script drops
``PYTHONDONTWRITEBYTECODE``) into a temporary ``PYTHONPYCACHEPREFIX``, after one untimed
warm-up run of each case that fills it. Min and median of the timed runs are printed, each with
its ratio to ``python -c pass``: the min is the least disturbed by a noisy machine.
tests/cli/test_startup.py keeps the heavy modules out; this measures the result.

Run: .venv/bin/python benchmarks/cli_startup.py [--repeats 11]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("llem")
LLEM = (
    [str(SCRIPT)]  # the console script an installed user runs
    if SCRIPT.exists()
    else [sys.executable, "-c", "from llenergymeasure.cli.app import main; main()"]
)
BARE = "python -c pass"
CASES = {
    BARE: [sys.executable, "-c", "pass"],
    "llem --help": [*LLEM, "--help"],
    "llem campaign validate examples/campaign.yaml": [
        *LLEM, "campaign", "validate", "examples/campaign.yaml",
    ],
    "llem config params": [*LLEM, "config", "params"],
}  # fmt: skip
ISSUE_BARE_MS = 11.0
"""``python -c pass`` on the machine the targets were set on."""
TARGETS_MS = {
    "llem --help": 80.0,
    "llem campaign validate examples/campaign.yaml": 150.0,
}


def user_environment(cache_dir: str) -> dict[str, str]:
    """This process's environment as an installed user's shell has it: bytecode is written
    (and read back) under ``cache_dir``, so no run pays for compiling the project's files."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llem-pycache-") as cache_dir:
        env = user_environment(cache_dir)
        for command in CASES.values():  # untimed: fills the bytecode cache
            _run(command, env)
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.repeats):
            for name, command in CASES.items():  # interleaved: machine noise hits all alike
                times[name].append(_run(command, env))
    bare_min, bare_median = min(times[BARE]), statistics.median(times[BARE])
    print(f"{'':<48} {'min':>7} {'median':>9}   ratio to {BARE} (min, median)")
    for name, seen in times.items():
        low, median = min(seen), statistics.median(seen)
        line = (
            f"{name:<48} {1e3 * low:4.0f} ms {1e3 * median:6.0f} ms"
            f"   {low / bare_min:5.1f}x {median / bare_median:5.1f}x"
        )
        if name in TARGETS_MS:
            target = TARGETS_MS[name] / ISSUE_BARE_MS
            line += (
                f"   target <= {target:.1f}x ({TARGETS_MS[name]:.0f} ms at {ISSUE_BARE_MS:.0f} ms)"
            )
        print(line)
    print(
        f"{args.repeats} interleaved runs after one warm-up each, bytecode cached; on a shared "
        "machine read the ratios (min is the least disturbed)"
    )


if __name__ == "__main__":
    main()
