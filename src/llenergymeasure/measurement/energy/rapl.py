"""CPU package and DRAM energy from Linux powercap (Intel/AMD RAPL) sysfs counters.

The counters (µJ) wrap at ``max_energy_range_uj``. A background reader checks them at least
every second (faster when a time series is asked for), so a window of any length sees every
wrap; a plain start/stop read could miss a second wrap on a long window.

What is summed: top-level ``package-*`` zones plus ``dram`` zones (RAPL package energy does
not include DRAM). Other zones are left out and named in the notes: ``psys`` already
contains the packages, and ``core``/``uncore`` subzones are parts of their package. Without
any package zone, every top-level zone is summed.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.exceptions import ConfigError, ExperimentError, UnavailableError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    PeriodicSampler,
    PowerSample,
)

DEFAULT_ROOT = Path("/sys/class/powercap")
RESOLUTION_S = 0.001  # RAPL counters update about every millisecond
WRAP_GUARD_INTERVAL_S = 1.0
_ZONE_RE = re.compile(r"^(intel-rapl|amd-rapl):(\d+)(?::(\d+))?$")
_OTHER_SOURCES = "or choose energy source 'nvml' or 'estimate'"


@dataclass(frozen=True)
class RaplZone:
    path: Path
    label: str  # "package-0", or "package-0/dram" for a subzone
    max_energy_range_uj: int


@dataclass
class _Counter:
    """Running energy of one zone, corrected for wraps."""

    zone: RaplZone
    last_uj: int
    total_uj: int = 0
    wraps: int = 0
    power_w: list[float] = field(default_factory=list)

    def advance(self, now_uj: int) -> int:
        delta = now_uj - self.last_uj
        if delta < 0:
            delta += self.zone.max_energy_range_uj
            self.wraps += 1
        self.last_uj = now_uj
        self.total_uj += delta
        return delta


def _permission_error(path: Path, root: Path) -> UnavailableError:
    return UnavailableError(
        f"RAPL energy is not available here: permission denied reading {path} (readable only "
        "by root since the 2020 PLATYPUS fix, CVE-2020-8694)",
        fix=f"run as root or `sudo chmod o+r {root}/intel-rapl:*/energy_uj`",
    )


def _read_uj(path: Path, root: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as err:
        raise _permission_error(path, root) from err
    except (OSError, ValueError) as err:
        raise UnavailableError(
            f"RAPL energy is not available here: cannot read {path}: {err}",
            fix=f"check the powercap driver, {_OTHER_SOURCES}",
        ) from err


def discover_zones(root: Path = DEFAULT_ROOT) -> tuple[list[RaplZone], list[str]]:
    """The zones to sum and notes on the zones left out (see the module docstring)."""
    if not root.is_dir():
        raise UnavailableError(
            f"RAPL energy is not available here: no {root} (not Linux, no RAPL driver, or in a VM)",
            fix=f"on bare-metal Linux load the intel_rapl_msr module, {_OTHER_SOURCES}",
        )
    top: dict[tuple[str, int], tuple[Path, str]] = {}
    sub: dict[tuple[str, int, int], tuple[Path, str]] = {}
    try:
        entries = list(root.iterdir())
    except OSError as err:
        raise UnavailableError(
            f"RAPL energy is not available here: cannot list {root}: {err}",
            fix=f"check the powercap driver, {_OTHER_SOURCES}",
        ) from err
    found = [(m, p) for p in entries if (m := _ZONE_RE.match(p.name)) is not None]
    found.sort(key=lambda mp: (mp[0].group(1), int(mp[0].group(2)), int(mp[0].group(3) or -1)))
    for match, path in found:  # numeric order: intel-rapl:2 before intel-rapl:10
        try:
            name = (path / "name").read_text().strip()
        except OSError:
            continue
        prefix, package, subzone = match.group(1), int(match.group(2)), match.group(3)
        if subzone is None:
            top[(prefix, package)] = (path, name)
        else:
            sub[(prefix, package, int(subzone))] = (path, name)
    if not top:
        raise UnavailableError(
            f"RAPL energy is not available here: {root} has no intel-rapl or amd-rapl zones",
            fix=f"on bare-metal Linux load the intel_rapl_msr module, {_OTHER_SOURCES}",
        )

    names = [name for _, name in top.values()]
    chosen: list[tuple[Path, str]] = []
    notes: list[str] = []
    has_packages = any(name.startswith("package") for name in names)
    for path, name in top.values():
        label = name if names.count(name) == 1 else f"{name} ({path.name})"
        if not has_packages or name.startswith("package") or name == "dram":
            chosen.append((path, label))
        else:
            notes.append(
                f"RAPL zone {label} not summed: only package and dram zones are (psys already "
                "contains the packages)"
            )
    for (prefix, package, _), (path, name) in sub.items():
        parent = top.get((prefix, package))
        label = f"{parent[1] if parent else prefix + ':' + str(package)}/{name}"
        if has_packages and name == "dram":
            chosen.append((path, label))
    zones = [
        RaplZone(path, label, _read_uj(path / "max_energy_range_uj", root))
        for path, label in chosen
    ]
    return zones, notes


def probe(root: Path = DEFAULT_ROOT) -> Availability:
    """Can RAPL be read here? Never raises."""
    try:
        zones, _ = discover_zones(root)
        for zone in zones:
            _read_uj(zone.path / "energy_uj", root)
    except UnavailableError as err:
        return Availability(False, err.what, err.fix)
    labels = ", ".join(z.label for z in zones)
    return Availability(True, f"RAPL zones readable under {root}: {labels}")


@dataclass
class _Window:
    counters: list[_Counter]
    notes: list[str]
    t0: float
    times_s: list[float] = field(default_factory=lambda: [0.0])


class RAPLEnergySource:
    """Whole-socket CPU (and DRAM) energy: includes every process on those sockets."""

    name = "rapl"
    covers_host_cpu = True  # its energy includes every process on the host CPU
    method: EnergyMethod = "rapl"
    update_period_s = RESOLUTION_S  # nominal: RAPL counters update about every millisecond
    target_error_pct = 1.0
    default_min_window_s = 0.0

    def __init__(
        self,
        root: Path = DEFAULT_ROOT,
        *,
        sample_interval_ms: float = 100.0,
        timeseries: bool = False,
    ) -> None:
        if sample_interval_ms <= 0:
            raise ConfigError(f"sample_interval_ms must be > 0, got {sample_interval_ms}")
        self.root = root
        self.sample_interval_ms = sample_interval_ms
        self.timeseries = timeseries
        self._window: _Window | None = None
        self._sampler: PeriodicSampler | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> RAPLEnergySource:
        interval_ms = options.sample_interval_ms
        if options.timeseries and options.timeseries_interval_ms is not None:
            interval_ms = options.timeseries_interval_ms  # the sampler only feeds the series
        return cls(
            options.rapl_root or DEFAULT_ROOT,
            sample_interval_ms=interval_ms,
            timeseries=options.timeseries,
        )

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        return probe(options.rapl_root or DEFAULT_ROOT)

    @property
    def devices(self) -> tuple[str, ...]:
        zones, _ = discover_zones(self.root)
        return tuple(z.label for z in zones)

    def start(self) -> None:
        if self._window is not None:
            raise ExperimentError("RAPL energy window started twice without stop()")
        zones, notes = discover_zones(self.root)
        counters = [_Counter(z, _read_uj(z.path / "energy_uj", self.root)) for z in zones]
        t0 = time.perf_counter()
        interval_s = (
            min(self.sample_interval_ms / 1000.0, WRAP_GUARD_INTERVAL_S)
            if self.timeseries
            else WRAP_GUARD_INTERVAL_S
        )
        window = _Window(counters, notes, t0)
        sampler = PeriodicSampler(
            functools.partial(self._sample, window), interval_s, t0, "llem-rapl-sampler"
        )
        sampler.start()
        self._window, self._sampler = window, sampler

    def _sample(self, w: _Window) -> None:
        readings = [_read_uj(c.zone.path / "energy_uj", self.root) for c in w.counters]
        t_s = time.perf_counter() - w.t0
        dt_s = t_s - w.times_s[-1]
        for counter, now_uj in zip(w.counters, readings, strict=True):
            delta_uj = counter.advance(now_uj)
            counter.power_w.append(delta_uj / 1e6 / dt_s if dt_s > 0 else 0.0)
        w.times_s.append(t_s)

    def stop(self) -> EnergyReading:
        w, sampler = self._window, self._sampler
        if w is None or sampler is None:
            raise ExperimentError("RAPL energy window stopped without start()")
        self._window = self._sampler = None
        sampler.halt()
        self._sample(w)
        duration_s = w.times_s[-1]
        per_device_j = {c.zone.label: c.total_uj / 1e6 for c in w.counters}
        notes = list(w.notes)
        notes += [
            f"{c.zone.label}: counter wrapped {c.wraps} time(s), corrected with "
            f"max_energy_range_uj={c.zone.max_energy_range_uj}"
            for c in w.counters
            if c.wraps
        ]
        samples: tuple[PowerSample, ...] = ()
        if self.timeseries:  # each sample is the mean power since the previous one
            samples = tuple(
                PowerSample(
                    t_s=t_s,
                    power_w=sum(c.power_w[i] for c in w.counters),
                    device_power_w={c.zone.label: c.power_w[i] for c in w.counters},
                )
                for i, t_s in enumerate(w.times_s[1:])
            )
        return EnergyReading(
            source=self.name,
            method="rapl",
            energy_j=sum(per_device_j.values()),
            duration_s=duration_s,
            devices=tuple(c.zone.label for c in w.counters),
            per_device_energy_j=per_device_j,
            sample_interval_ms=self.sample_interval_ms if self.timeseries else None,
            is_estimate=False,
            resolution_warning=(
                f"window of {duration_s * 1000:.3f} ms is shorter than the RAPL counter "
                f"update period (~{RESOLUTION_S * 1000:g} ms)"
                if duration_s < RESOLUTION_S
                else None
            ),
            samples=samples,
            notes=tuple(notes),
            update_period_s=RESOLUTION_S,
            update_period_method="nominal: RAPL counters update about every 1 ms",
        )
