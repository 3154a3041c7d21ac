"""Parameter counts of a causal LM, the same way for every backend (they feed the FLOP estimate).

Engines may repack or pad weights (vLLM on CPU swaps linear weights for oneDNN handles and pads
the vocabulary), so a backend that does not hold a transformers model counts the model's
definition instead: ``from_config`` on the meta device, no weights allocated.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.config.models import ModelConfig
from llenergymeasure.measurement.models.loading import hub_access, import_transformers


def parameter_counts(model: Any) -> tuple[int, int | None, int | None]:
    """(all, outside the input embeddings, LM head) parameters of a transformers model."""
    try:
        body: int | None = int(model.num_parameters(exclude_embeddings=True))
    except (TypeError, AttributeError):
        body = None
    head = getattr(model, "get_output_embeddings", lambda: None)()
    weight = getattr(head, "weight", None)
    return int(model.num_parameters()), body, None if weight is None else int(weight.numel())


def definition_parameter_counts(
    model: ModelConfig, source: str
) -> tuple[int, int | None, int | None]:
    """``parameter_counts`` of the model built from its config on the meta device."""
    transformers = import_transformers()
    import torch

    config = transformers.AutoConfig.from_pretrained(
        source,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
        **hub_access(source),
    )
    with torch.device("meta"):
        skeleton = transformers.AutoModelForCausalLM.from_config(
            config, trust_remote_code=model.trust_remote_code
        )
    return parameter_counts(skeleton)
