"""Reading a config file: the bounded reader against PyYAML's own loaders, and hostile files.

Prints, measured side by side in one run (CPU seconds of this process, best of --repeats):
  read_yaml (bounded: limits, line map, one pass on libyaml events)
  the previous reader: pure-Python SafeLoader, composed for the line map, then loaded again
  yaml.load with CSafeLoader (libyaml, no limits, no line map): the floor
on examples/campaign.yaml and on an explicit list of 4,000 experiments; then how long each
hostile file in tests/data/hostile/ takes to be refused (target: under 2 s each).

Run: .venv/bin/python benchmarks/yaml_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from llenergymeasure.config.loader import read_yaml
from llenergymeasure.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _previous(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    yaml.compose(text, Loader=yaml.SafeLoader)
    return yaml.load(text, Loader=yaml.SafeLoader)


def _floor(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


def _explicit_list(directory: Path, count: int = 4000) -> Path:
    lines = ["campaign_name: big", "base_config: {model: builtin:tiny-gpt2}", "experiments:"]
    lines += [
        f"  - overrides: {{name: exp{i}, dataset.num_prompts: {i % 50 + 1}, "
        f"pytorch.batch_size: {i % 8 + 1}, decoder.temperature: 0.{i % 9}}}"
        for i in range(count)
    ]
    path = directory / "explicit-4000.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _best(fn: Callable[[Path], Any], path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        fn(path)
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path in (REPO / "examples" / "campaign.yaml", _explicit_list(Path(tmp))):
            ours = _best(read_yaml, path, args.repeats)
            previous = _best(_previous, path, args.repeats)
            floor = _best(_floor, path, args.repeats)
            print(
                f"{path.name}: read_yaml {ours * 1e3:.1f} ms, previous reader "
                f"{previous * 1e3:.1f} ms ({previous / ours:.1f}x slower), CSafeLoader "
                f"{floor * 1e3:.1f} ms (read_yaml / CSafeLoader = {ours / floor:.2f})"
            )
    print("hostile files, time to refuse:")
    for path in sorted((REPO / "tests" / "data" / "hostile").glob("*.yaml")):
        started = time.process_time()
        try:
            read_yaml(path)
            verdict = "read (the models decide)"
        except ConfigError as error:
            verdict = error.what[:60]
        print(f"  {time.process_time() - started:6.3f} s  {path.name}: {verdict}")


if __name__ == "__main__":
    main()
