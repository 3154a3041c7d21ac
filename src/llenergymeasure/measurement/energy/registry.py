"""Find energy sources by name without importing any of them until one is chosen.

``auto`` prefers what measures most directly: NVML (GPU counters) when a usable NVIDIA GPU
is present, else RAPL when its counters are readable, else the CPU estimate. Asking for a
source by name never falls back: if it cannot be used here, the error says why and how to fix.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from pathlib import Path
from typing import Any

from llenergymeasure.config.energy_sources import ENERGY_SOURCE_SPECS
from llenergymeasure.exceptions import ConfigError, UnavailableError
from llenergymeasure.log import logger
from llenergymeasure.measurement.energy.base import Availability, EnergyOptions, EnergySource

ENERGY_SOURCES: dict[str, str] = {name: spec.source for name, spec in ENERGY_SOURCE_SPECS.items()}
"""Source name -> ``module:Class`` (from ``config.energy_sources``)."""
AUTO_ORDER = tuple(name for name, spec in ENERGY_SOURCE_SPECS.items() if spec.auto)
SOURCE_NAMES = ("auto", *ENERGY_SOURCES)


def _load_class(name: str) -> Any:
    module_name, class_name = ENERGY_SOURCES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _check_name(source: str) -> None:
    if source in SOURCE_NAMES:
        return
    close = difflib.get_close_matches(source.lower(), SOURCE_NAMES, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"unknown energy source '{source}'",
        fix=f"{hint}choose one of: {', '.join(SOURCE_NAMES)}",
    )


def probe_energy_sources(*, rapl_root: Path | None = None) -> dict[str, Availability]:
    """Whether each source can be used here, and why not. Never raises."""
    options = EnergyOptions(rapl_root=rapl_root)
    return {name: _load_class(name).availability(options) for name in ENERGY_SOURCES}


def clear_probe_caches() -> None:
    """Forget cached probe results and warnings (tests, or after the driver state changed)."""
    from llenergymeasure.measurement.energy.nvml import clear_probe_cache

    clear_probe_cache()
    _warn_estimate_once.cache_clear()


def select_energy_source(
    source: str = "auto", options: EnergyOptions | None = None
) -> EnergySource:
    """The energy source to use: the named one (raising UnavailableError with the reason and
    fix when it cannot work here), or for ``auto`` the best available one, logged with why.

    ``options.devices`` are what the model runs on: GPU sources measure exactly those, and
    ``auto`` skips NVML when the model uses no NVIDIA GPU."""
    _check_name(source)
    options = options or EnergyOptions()
    if source != "auto":
        cls = _load_class(source)
        availability = cls.availability(options)
        if not availability.available:
            raise UnavailableError(
                f"energy source '{source}' is not available here: {availability.reason}",
                fix=availability.fix,
            )
        instance: EnergySource = cls.from_options(options)
        return instance

    skipped: list[str] = []
    for name in AUTO_ORDER:
        cls = _load_class(name)
        availability = cls.availability(options)
        if availability.available:
            if skipped:
                logger.info("energy source auto: skipped {}", "; ".join(skipped))
            logger.info("energy source auto -> {} ({})", name, availability.reason)
            if name == "estimate":
                _warn_estimate_once()
            chosen: EnergySource = cls.from_options(options)
            return chosen
        skipped.append(f"{name}: {availability.reason}")
    raise AssertionError("the estimate source is always available")  # pragma: no cover


@cache
def _warn_estimate_once() -> None:
    """Said once per process, not once per experiment of a campaign."""
    logger.warning(
        "no energy sensor available: energy will be an ESTIMATE from CPU utilisation x TDP, "
        "labelled as such in the results"
    )
