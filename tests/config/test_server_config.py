"""The server: section: a local server only, a served mode only where a backend has one, and
the grid axes a serving campaign sweeps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from llenergymeasure.config.introspection import model_load_key
from llenergymeasure.config.loader import load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ConfigError


def _served(**server: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "builtin:tiny-gpt2", "backend": "vllm", "server": server}
    )


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000/v1/", "http://localhost:8000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://127.0.0.2:8000/", "http://127.0.0.2:8000"),
    ],
)
def test_a_loopback_url_is_kept_as_the_server_root(url: str, kept: str) -> None:
    served = _served(url=url).server
    assert served is not None and served.url == kept


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://10.0.0.5:8000", "not a loopback address"),
        ("http://gpu-node-3:8000", "not a loopback address"),
        ("127.0.0.1:8000", "not an http(s) URL"),
        ("http://127.0.0.1:8000/v1/completions", "has a path or query"),
        ("http://127.0.0.1:99999", "no valid port"),
        ("http://127.0.0.1:port", "no valid port"),
    ],
)
def test_a_server_elsewhere_is_refused_with_the_fix(url: str, said: str) -> None:
    with pytest.raises(ValidationError, match=r"fix: ") as caught:
        _served(url=url)
    assert said in str(caught.value)


def test_a_backend_without_a_served_mode_is_refused(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(
        """
        model: builtin:tiny-gpt2
        backend: pytorch
        server: {max_concurrency: 4}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_experiment_config(path)
    text = caught.value.render()
    assert "config.yaml:3" in text and "backend pytorch has no served mode" in text
    assert "set backend to vllm" in text


def test_the_served_mode_has_its_own_load_key_and_traffic_does_not_change_it() -> None:
    offline = ExperimentConfig.model_validate({"model": "builtin:tiny-gpt2", "backend": "vllm"})
    started = _served(max_concurrency=4)
    other_rate = _served(max_concurrency=16, slo={"ttft_ms": 50})
    external = _served(url="http://127.0.0.1:8000")
    assert model_load_key(offline) != model_load_key(started)
    assert model_load_key(started) == model_load_key(other_rate)  # one server for a rate sweep
    assert model_load_key(started) != model_load_key(external)


REPO = Path(__file__).resolve().parents[2]


def test_the_serving_examples_load_and_the_rate_sweep_shares_one_server() -> None:
    from llenergymeasure.config.loader import load_campaign_config
    from llenergymeasure.orchestration.grid import expand_campaign_grid

    experiment = load_experiment_config(REPO / "examples" / "experiment-serve.yaml")
    assert experiment.server is not None and experiment.traffic.mode == "poisson"
    campaign = load_campaign_config(REPO / "examples" / "campaign-serve.yaml")
    assert campaign.grid is not None
    points = expand_campaign_grid(campaign.grid, campaign.base_config)
    configs = [ExperimentConfig.model_validate(p) for p in points]
    assert sorted(c.traffic.target_qps or 0 for c in configs) == [2, 4, 8]
    assert len({model_load_key(c) for c in configs}) == 1
