"""The device reference: a GPU named across torch and the vendor library by its UUID."""

from __future__ import annotations

from llenergymeasure.devices.base import nvml_uuid


def test_torch_uuid_becomes_nvmls_form() -> None:
    assert nvml_uuid("58e9c5c1-4dc3-0c2b-1d28-0a5e1c1c5b3e") == (
        "GPU-58e9c5c1-4dc3-0c2b-1d28-0a5e1c1c5b3e"
    )
    assert nvml_uuid("GPU-abc") == "GPU-abc"
    assert nvml_uuid("") is None
