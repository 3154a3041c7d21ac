"""How fast ``llem`` starts, against ``python -c pass`` in the same run (interleaved, medians).

Targets on an idle machine: ``llem --help`` <= 80 ms, ``llem campaign validate
examples/campaign.yaml`` <= 150 ms. On a loaded machine read the ratios to the bare
interpreter. tests/cli/test_startup.py keeps the heavy modules out; this measures the result.

Run: .venv/bin/python benchmarks/cli_startup.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLEM = [sys.executable, "-c", "from llenergymeasure.cli.app import main; main()"]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "llem --help": [*LLEM, "--help"],
    "llem campaign validate examples/campaign.yaml": [
        *LLEM, "campaign", "validate", "examples/campaign.yaml",
    ],
    "llem config params": [*LLEM, "config", "params"],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, command in CASES.items():  # interleaved: machine noise hits all alike
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c pass"])
    for name, seen in times.items():
        median = statistics.median(seen)
        print(f"{name:<48} {1e3 * median:7.0f} ms  ({median / bare:5.1f}x python -c pass)")
    print("note: medians of interleaved runs; a shared machine: read the ratios")


if __name__ == "__main__":
    main()
