"""What `llem report` costs for a 2,000-config campaign against a 10-config one, side by side.

Synthetic results (3 cycles per config, no model run), alternated run by run so machine noise
hits both sizes alike:

1. build: ``write_report`` from results already in memory (figures' data, Vega-Lite specs,
   SVG + PNG of every figure, the page);
2. load: reading the folder of result.json files back and aggregating them (what ``llem
   report DIR`` does before it draws).

The JavaScript bundle is cached before timing (its first build, once per vl-convert version,
takes a few seconds more). Read the ratios, not the absolute seconds: the machine may be shared.

Run: .venv/bin/python benchmarks/report_scale.py [--repeats 2] [--configs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/report/synthetic.py builds the results
sys.path.insert(0, str(ROOT / "tests"))  # its helpers import the shared fakes

from tests.report import synthetic as S  # noqa: E402

from llenergymeasure.report import static  # noqa: E402
from llenergymeasure.report.build import write_report  # noqa: E402
from llenergymeasure.results.aggregation import aggregate  # noqa: E402
from llenergymeasure.results.export import records_from_folder  # noqa: E402


def build_s(records: list, directory: Path) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    write_report([S.source(records, directory=directory)], directory / "report.html")
    return time.perf_counter() - started


def load_s(directory: Path) -> float:
    started = time.perf_counter()
    aggregate(records_from_folder(directory))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", type=int, default=2000)
    parser.add_argument("--small", type=int, default=10)
    args = parser.parse_args()
    static.javascript_bundle()  # cached now, not inside the timings
    sizes = {"small": args.small, "large": args.configs}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {k: Path(tmp) / k for k in sizes}
        records = {k: S.big_grid(n) for k, n in sizes.items()}
        for key, folder in folders.items():
            S.save_all(records[key], folder)
        build: dict[str, list[float]] = {k: [] for k in sizes}
        load: dict[str, list[float]] = {k: [] for k in sizes}
        for _ in range(args.repeats):
            for key in sizes:
                build[key].append(build_s(records[key], folders[key]))
                load[key].append(load_s(folders[key]))
    for label, times in (("build", build), ("load", load)):
        small, large = statistics.median(times["small"]), statistics.median(times["large"])
        print(
            f"{label}: {args.small} configs {small:.2f} s, {args.configs} configs {large:.2f} s "
            f"(median of {args.repeats}); ratio {large / small:.1f}x"
        )
    total_small = statistics.median(build["small"]) + statistics.median(load["small"])
    total_large = statistics.median(build["large"]) + statistics.median(load["large"])
    print(
        f"load + build: {total_small:.2f} s vs {total_large:.2f} s, ratio "
        f"{total_large / total_small:.1f}x (target: the large report in seconds)"
    )


if __name__ == "__main__":
    main()
