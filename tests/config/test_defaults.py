"""Default factories (``factory(...)`` in the models) make what the class or builtin makes,
freshly for every config: a mutable default is never shared between two configs."""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel

from llenergymeasure.config import backend_configs, campaign_config, grid_config, models
from llenergymeasure.config.campaign_config import CampaignConfig
from llenergymeasure.config.introspection import submodel


def _config_models() -> list[type[BaseModel]]:
    return [
        cls
        for module in (backend_configs, models, grid_config, campaign_config)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == module.__name__
    ]


def _factory_fields() -> list[tuple[type[BaseModel], str, Any]]:
    return [
        (model, name, info)
        for model in _config_models()
        for name, info in model.model_fields.items()
        if info.default_factory is not None
    ]


def test_every_default_factory_makes_a_fresh_value_like_its_class() -> None:
    fields = _factory_fields()
    assert len(fields) >= 20  # the sections of ExperimentConfig and CampaignConfig, and more
    for model, name, info in fields:
        first = info.get_default(call_default_factory=True)
        second = info.get_default(call_default_factory=True)
        assert first == second, (model.__name__, name)
        section = submodel(info.annotation)
        if section is not None:
            assert type(first) is section and first == section(), (model.__name__, name)
        else:
            assert type(first) in (list, dict) and not first, (model.__name__, name)
            assert first is not second, (model.__name__, name)  # never shared


def test_two_configs_never_share_a_mutable_default() -> None:
    data = {
        "campaign_name": "c",
        "base_config": {"model": "gpt2"},
        "grid": {"backends": ["pytorch"]},
    }
    one, two = CampaignConfig.model_validate(data), CampaignConfig.model_validate(data)
    assert one == two
    assert one.experiments is not two.experiments
    assert one.grid is not None and two.grid is not None
    assert one.grid.shared is not two.grid.shared
