"""Idle baseline power: energy over an idle window / its length, cached for a while.

Subtracting it separates what the workload costs from what the machine burns anyway. The
cache avoids re-measuring an idle machine before every experiment of a campaign; it is keyed
by host, source and devices (or the caller's key: the harness adds the device state and, by
default, this process and the resident model), so a shared home directory on a cluster never
hands one node's baseline to another. A baseline taken on a busy machine is never cached.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import ConfigError, ExperimentError
from llenergymeasure.files import default_cache_dir, write_json_atomic
from llenergymeasure.log import logger
from llenergymeasure.measurement.energy.base import EnergySource
from llenergymeasure.measurement.host_load import HostLoadSampler, machine_busy

CACHE_FILE_NAME = "baseline.json"
_CACHE_VERSION = 2  # 2: keyed on device set and state; measured with the model loaded


@dataclass(frozen=True)
class BaselineReading:
    power_w: float
    duration_s: float
    source: str
    method: str
    devices: tuple[str, ...]
    measured_at: str  # ISO 8601, UTC
    from_cache: bool
    is_estimate: bool
    when: str | None = None  # in which device state it was measured, e.g. after warmup
    state: tuple[dict[str, Any], ...] = ()  # per device: P-state, clocks, temperature
    other_processes: tuple[dict[str, Any], ...] = ()  # other processes on a measured GPU
    cache_key: str | None = None
    # counter quantisation over the idle period (the source's error_bound_pct); the spread
    # of idle power samples is not included
    error_bound_pct: float | None = None
    host_load: dict[str, Any] | None = None  # CPU-side sources: other processes' CPU share

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["devices"] = list(self.devices)
        data["state"] = [dict(s) for s in self.state]
        data["other_processes"] = [dict(p) for p in self.other_processes]
        return data


def default_baseline_cache_path() -> Path:
    return default_cache_dir() / CACHE_FILE_NAME


def _cache_key(source: EnergySource, cache_key: str | None) -> str:
    """host | source | devices | caller's detail (device set and state), never a bare name:
    a baseline of one GPU set or device state is never handed to another."""
    devices = ",".join(getattr(source, "devices", ()) or ("unknown devices",))
    detail = f"|{cache_key}" if cache_key is not None else ""
    return f"{socket.gethostname()}|{source.name}|{devices}{detail}"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable baseline cache {}: {}", path, err)
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _from_entry(entry: Any) -> BaselineReading | None:
    try:
        return BaselineReading(
            power_w=float(entry["power_w"]),
            duration_s=float(entry["duration_s"]),
            source=str(entry["source"]),
            method=str(entry["method"]),
            devices=tuple(entry["devices"]),
            measured_at=str(entry["measured_at"]),
            from_cache=True,
            is_estimate=bool(entry["is_estimate"]),
            when=entry.get("when"),
            state=tuple(entry.get("state") or ()),
            cache_key=entry.get("cache_key"),
            error_bound_pct=entry.get("error_bound_pct"),
            host_load=entry.get("host_load"),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _age_s(measured_at: str, now_s: float) -> float | None:
    try:
        return now_s - datetime.fromisoformat(measured_at).timestamp()
    except ValueError:
        return None


def measure_baseline(
    source: EnergySource,
    duration_sec: float,
    *,
    cache_path: Path | None = None,
    ttl_sec: float = 3600.0,
    cache_key: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    when: str | None = None,
    state: list[dict[str, Any]] | None = None,
    read_state: Callable[[], list[dict[str, Any]] | None] | None = None,
    host: HostLoadSampler | None = None,
    on_measure: Callable[[], None] | None = None,
) -> BaselineReading:
    """Idle power of ``source``'s devices: a cached value younger than ``ttl_sec`` if there
    is one, else a fresh measurement over ``duration_sec`` of idling, which is then cached.

    ``cache_path`` defaults to ``default_cache_dir()/baseline.json``; ``ttl_sec <= 0`` always
    measures. The caller keeps the machine idle during the window. ``read_state`` is called
    halfway through the idle period (the recorded device state is the one during it, else
    ``state``); ``host`` samples other processes' CPU use through it, and a baseline taken
    while the machine was busy (or a GPU contended) is never cached. ``on_measure`` is called
    just before a fresh measurement (progress messages).
    """
    if duration_sec <= 0:
        raise ConfigError(f"baseline duration must be > 0 s, got {duration_sec}")
    path = cache_path if cache_path is not None else default_baseline_cache_path()
    key = _cache_key(source, cache_key)
    entries = _load(path)

    cached = _from_entry(entries.get(key)) if ttl_sec > 0 else None
    if cached is not None:
        age_s = _age_s(cached.measured_at, clock())
        if age_s is not None and 0 <= age_s < ttl_sec:
            logger.info(
                "baseline {:.1f} W from cache ({:.0f} s old, {})", cached.power_w, age_s, key
            )
            return cached

    if on_measure is not None:
        on_measure()
    if host is not None:
        host.start()
    source.start()
    sleep(duration_sec / 2)
    during = read_state() if read_state is not None else None
    sleep(duration_sec / 2)
    reading = source.stop()
    host_load = host.stop() if host is not None else None
    if reading.duration_s <= 0:
        raise ExperimentError(f"the {reading.source} baseline window had zero length")
    baseline = BaselineReading(
        power_w=reading.energy_j / reading.duration_s,
        duration_s=reading.duration_s,
        source=reading.source,
        method=reading.method,
        devices=reading.devices,
        measured_at=datetime.fromtimestamp(clock(), tz=timezone.utc).isoformat(),
        from_cache=False,
        is_estimate=reading.is_estimate,
        when=when,
        state=tuple(during or state or ()),
        other_processes=reading.other_processes + reading.unknown_processes,
        cache_key=key,
        error_bound_pct=reading.error_bound_pct(),
        host_load=host_load,
    )
    logger.info(
        "baseline {:.1f} W measured over {:.1f} s ({})", baseline.power_w, baseline.duration_s, key
    )

    if baseline.other_processes or machine_busy(host_load):  # no idle baseline to reuse
        return baseline
    entries = _load(path)  # re-read: another process may have written meanwhile
    entries[key] = {
        k: v for k, v in baseline.to_dict().items() if k not in ("from_cache", "other_processes")
    }
    try:
        write_json_atomic(path, {"version": _CACHE_VERSION, "entries": entries})
    except OSError as err:
        logger.warning("could not write baseline cache {}: {}", path, err)
    return baseline
