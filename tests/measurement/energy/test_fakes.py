"""The fakes must behave like the real interfaces, or tests built on them prove nothing."""

from __future__ import annotations

import ctypes
import importlib
import inspect
import sys
import time

import pytest

from fakes import fake_pynvml
from fakes.fake_powercap import FakePowercap


@pytest.fixture
def real_pynvml(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    return pytest.importorskip("pynvml")


def _params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_fake_functions_exist_in_real_pynvml_with_same_parameters(real_pynvml) -> None:
    assert fake_pynvml.FAKE_FUNCTIONS, "the fake defines no nvml* functions"
    for name in fake_pynvml.FAKE_FUNCTIONS:
        real = getattr(real_pynvml, name, None)
        assert real is not None, f"real pynvml has no {name}"
        fake = getattr(fake_pynvml.FakeNVML, name)
        assert _params(fake) == _params(real), name


def test_fake_error_codes_and_class_names_match_real(real_pynvml) -> None:
    for name, code in fake_pynvml.ERROR_CODES.items():
        assert getattr(real_pynvml, name) == code, name
    for class_name in fake_pynvml.ERROR_CLASSES:
        assert hasattr(real_pynvml, class_name), class_name
    err = fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert type(err).__name__ == "NVMLError_NotSupported"
    assert isinstance(err, fake_pynvml.NVMLError)
    assert err.value == real_pynvml.NVML_ERROR_NOT_SUPPORTED
    real_err = real_pynvml.NVMLError(real_pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert type(real_err).__name__ == type(err).__name__


def test_fake_constants_match_real(real_pynvml) -> None:
    for name, value in fake_pynvml.CONSTANTS.items():
        assert getattr(real_pynvml, name) == value, name


def test_fake_field_value_struct_has_the_real_layout(real_pynvml) -> None:
    def layout(struct) -> list[tuple[str, int]]:
        return [(name, ctypes.sizeof(kind)) for name, kind in struct._fields_]

    assert layout(fake_pynvml.c_nvmlFieldValue_t) == layout(real_pynvml.c_nvmlFieldValue_t)
    assert layout(fake_pynvml.c_nvmlValue_t) == layout(real_pynvml.c_nvmlValue_t)


def test_fake_field_values_answer_like_nvml(monkeypatch) -> None:
    fake = fake_pynvml.install(
        monkeypatch, [fake_pynvml.FakeGPU(power_w=200.0, instant_power_w=250.0)]
    )
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    instant, other = fake.nvmlDeviceGetFieldValues(
        handle, [fake_pynvml.NVML_FI_DEV_POWER_INSTANT, 9999]
    )
    assert instant.nvmlReturn == fake_pynvml.NVML_SUCCESS and instant.value.uiVal == 250_000
    assert other.nvmlReturn == fake_pynvml.NVML_ERROR_NOT_SUPPORTED
    assert fake.nvmlDeviceGetPowerUsage(handle) == 200_000
    fake.nvmlShutdown()


def test_fake_counter_steps_at_its_update_period(monkeypatch) -> None:
    fake = fake_pynvml.install(
        monkeypatch,
        [fake_pynvml.FakeGPU(power_w=1000.0, counter_period_s=0.05)],
        advance_with_time=True,
    )
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    seen = set()
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        seen.add(fake.nvmlDeviceGetTotalEnergyConsumption(handle))
    fake.nvmlShutdown()
    assert 4 <= len(seen) <= 8  # ~6 steps of 50 J in 0.3 s, not a continuous ramp
    steps = sorted(b - a for a, b in zip(sorted(seen), sorted(seen)[1:], strict=False))
    assert steps[len(steps) // 2] == 50_000


def test_fake_refuses_calls_before_init_like_real_nvml() -> None:
    fake = fake_pynvml.FakeNVML([fake_pynvml.FakeGPU()])
    with pytest.raises(fake_pynvml.ERROR_CLASSES["NVMLError_Uninitialized"]):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 1
    fake.nvmlShutdown()
    with pytest.raises(fake_pynvml.NVMLError):
        fake.nvmlDeviceGetCount()


def test_fake_is_importable_as_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml.install(monkeypatch)
    assert importlib.import_module("pynvml") is fake


def test_fake_powercap_wraps_at_max_range(tmp_path) -> None:
    tree = FakePowercap(tmp_path)
    tree.add_zone("0", "package-0", energy_uj=900, max_energy_range_uj=1000)
    tree.add_energy("0", 300)
    assert tree.energy("0") == 200
    assert (tmp_path / "intel-rapl:0" / "name").read_text().strip() == "package-0"
