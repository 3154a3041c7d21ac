"""A scripted noisy energy source for the adaptive-cycle tests on the built-in model.

The CPU estimate source, with the energy of its measured window replaced by a value fixed by
(config name, cycle): the ``out4`` config is steady (0.1% spread), every other config swings
+/- 30%. The value depends on nothing else, so it is the same in any process and after any
resume. :class:`ScriptedExecutor` tells the source which experiment is running; run
``python scripted_energy.py FILE DIR [--resume]`` to run a campaign with it (a process the
test can kill).
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path
from typing import Any

from llenergymeasure.measurement.energy.estimate import EstimateEnergySource

STEADY = "pytorch_tiny-gpt2_out4"
CURRENT: dict[str, Any] = {}


def scripted_energy_j(name: str, cycle: int) -> float:
    rng = random.Random(f"{name}:{cycle}")
    spread = 0.001 if name == STEADY else 0.3
    return 2.0 * (1 + spread * rng.uniform(-1, 1))


class ScriptedEstimate(EstimateEnergySource):
    """The estimate source whose window energy is scripted (method and labels unchanged).

    A scripted value has no counter to quantise, so no update period: one pass is a long enough
    window, and every cycle measures the same tokens (J/token varies only as scripted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.update_period_s = None  # type: ignore[assignment]

    def stop(self) -> Any:
        reading = super().stop()
        if not CURRENT:
            return reading
        return dataclasses.replace(
            reading, energy_j=scripted_energy_j(CURRENT["name"], CURRENT["cycle"])
        )


class ScriptedExecutor:
    """Runs experiments in process, telling the scripted source which one is measuring."""

    def __init__(self) -> None:
        from llenergymeasure.orchestration.executors.inprocess import InProcessExecutor

        self.inner = InProcessExecutor(reuse_models=True)
        self.name = self.inner.name

    def run(self, task: Any, progress: Any = None) -> Any:
        CURRENT.update(name=task.name, cycle=task.cycle)
        try:
            return self.inner.run(task, progress)
        finally:
            CURRENT.clear()

    def close(self) -> None:
        self.inner.close()


def install() -> None:
    """Register the scripted source under the name ``estimate``."""
    from llenergymeasure.measurement.energy import registry

    registry.ENERGY_SOURCES["estimate"] = f"{__name__}:ScriptedEstimate"


def main(argv: list[str]) -> int:
    from llenergymeasure.orchestration.campaign.runner import run_campaign

    install()
    outcome = run_campaign(
        Path(argv[0]),
        Path(argv[1]),
        resume="--resume" in argv,
        executor=ScriptedExecutor(),
        export_formats=("csv",),
    )
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
