"""The thermal guard: no experiment starts on a GPU that is still hot from the last one."""

from __future__ import annotations

import time
from collections.abc import Callable

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.log import logger
from llenergymeasure.orchestration.campaign.schedule import Clock, Sleep

TemperatureProbe = Callable[[], dict[int, float]]
THERMAL_POLL_S = 5.0


class ThermalGuard:
    """Waits until every GPU is below ``max_temperature_c`` (up to a timeout) before an
    experiment. Without NVML it logs once and never waits."""

    def __init__(
        self,
        execution: ExecutionConfig,
        *,
        temperatures: TemperatureProbe | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        poll_s: float = THERMAL_POLL_S,
    ) -> None:
        self.settings = execution.thermal_wait
        self.enabled = self.settings.enabled
        self._probe = temperatures
        self.sleep, self.clock, self.poll_s = sleep, clock, poll_s
        self.waited_s = 0.0
        self.skipped_reason: str | None = None

    def _read(self) -> dict[int, float] | None:
        probe = self._probe
        if probe is None:
            from llenergymeasure.devices.nvidia import gpu_temperatures_c

            probe = self._probe = gpu_temperatures_c
        try:
            return probe()
        except LLEMError as err:
            self.enabled = False
            self.skipped_reason = err.what
            logger.info("thermal wait skipped: no GPU temperature available ({})", err.what)
            return None

    def wait(self, on_wait: Callable[[str, float], None] | None = None) -> float:
        """Seconds waited (0 when already cool, disabled or unavailable)."""
        if not self.enabled:
            return 0.0
        limit = self.settings.max_temperature_c
        started = self.clock()
        announced = False
        while True:
            temps = self._read()
            if not temps:
                break
            hottest = max(temps.values())
            if hottest < limit:
                break
            elapsed = self.clock() - started
            if elapsed >= self.settings.timeout_seconds:
                logger.warning(
                    "GPU still at {:.0f} C after {:.0f} s (limit {:.0f} C): continuing",
                    hottest,
                    elapsed,
                    limit,
                )
                break
            if not announced and on_wait is not None:
                on_wait(
                    f"GPU at {hottest:.0f} C, cooling below {limit:.0f} C",
                    self.settings.timeout_seconds,
                )
                announced = True
            self.sleep(min(self.poll_s, max(0.0, self.settings.timeout_seconds - elapsed)))
        waited = self.clock() - started
        self.waited_s += waited
        return waited
