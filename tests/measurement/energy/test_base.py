from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llenergymeasure.measurement.energy.base import EnergyReading, PowerSample, trapezoid_energy_j


def _reading(**overrides) -> EnergyReading:
    fields = {
        "source": "rapl",
        "method": "rapl",
        "energy_j": 30.0,
        "duration_s": 2.0,
        "devices": ("package-0",),
        "per_device_energy_j": {"package-0": 30.0},
        "sample_interval_ms": None,
        "is_estimate": False,
        "resolution_warning": None,
    }
    return EnergyReading(**{**fields, **overrides})


def test_trapezoid_of_a_ramp_is_exact() -> None:
    # power rises 0 -> 100 W over 2 s, then holds 100 W for 1 s: 100 J + 100 J
    assert trapezoid_energy_j([0.0, 1.0, 2.0, 3.0], [0.0, 50.0, 100.0, 100.0]) == 200.0
    assert trapezoid_energy_j([0.0], [10.0]) == 0.0
    with pytest.raises(ValueError):
        trapezoid_energy_j([0.0, 1.0], [1.0])


def test_mean_power_and_zero_length_window() -> None:
    assert _reading().mean_power_w == 15.0
    assert _reading(duration_s=0.0).mean_power_w is None


def test_to_dict_is_strict_json() -> None:
    reading = _reading(
        energy_j=float("nan"),
        samples=(PowerSample(t_s=0.1, power_w=5.0, device_power_w={"package-0": 5.0}),),
        notes=("n",),
    )
    data = json.loads(json.dumps(reading.to_dict(), allow_nan=False))
    assert data["energy_j"] is None
    assert data["samples"][0]["device_power_w"] == {"package-0": 5.0}
    assert data["notes"] == ["n"]


def test_importing_energy_code_imports_no_vendor_library() -> None:
    code = (
        "import sys\n"
        "import llenergymeasure.measurement.energy\n"
        "import llenergymeasure.measurement.energy.nvml, llenergymeasure.measurement.energy.rapl\n"
        "import llenergymeasure.measurement.energy.zeus\n"
        "import llenergymeasure.measurement.energy.codecarbon\n"
        "import llenergymeasure.measurement.energy.estimate\n"
        "import llenergymeasure.measurement.environment\n"
        "heavy = [m for m in ('pynvml', 'zeus', 'codecarbon', 'torch', 'psutil', 'numpy')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
