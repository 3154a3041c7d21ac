"""The backend specs: one per ``Backend`` option, each role naming a real field of its section."""

from __future__ import annotations

from typing import get_args

import pytest

from llenergymeasure.config.backends import BACKENDS, ROLES
from llenergymeasure.config.models import BACKEND_SECTIONS, Backend


def test_one_spec_per_backend_option() -> None:
    assert list(BACKENDS) == list(get_args(Backend)) == list(BACKEND_SECTIONS)
    assert all(BACKEND_SECTIONS[name] is spec.section for name, spec in BACKENDS.items())


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_role_is_a_field_of_the_section(name: str) -> None:
    spec = BACKENDS[name]
    assert set(spec.roles) <= set(ROLES) and "batching" in spec.roles
    for field in spec.roles.values():
        assert field in spec.section.model_fields, (name, field)
    module, _, cls = spec.engine.partition(":")
    assert module.startswith("llenergymeasure.measurement.inference.") and cls


@pytest.mark.parametrize(
    ("name", "section", "gpus"),
    [
        ("pytorch", {"batch_size": 8}, 1),
        ("vllm", None, 1),
        ("vllm", {"tensor_parallel_size": 4}, 4),
        ("vllm", {"tensor_parallel_size": 2, "pipeline_parallel_size": 3}, 6),
        ("tensorrt", {"tp_size": 2, "pp_size": 2}, 4),
    ],
)
def test_gpu_count_is_tensor_times_pipeline_parallel(
    name: str, section: dict[str, int] | None, gpus: int
) -> None:
    assert BACKENDS[name].gpu_count(section) == gpus


def test_one_spec_per_energy_source_option() -> None:
    from llenergymeasure.config.energy_sources import ENERGY_SOURCE_SPECS
    from llenergymeasure.config.models import NODE_WIDE_SOURCES, EnergySourceName

    assert ["auto", *ENERGY_SOURCE_SPECS] == list(get_args(EnergySourceName))
    assert {"rapl", "codecarbon", "estimate"} == NODE_WIDE_SOURCES
