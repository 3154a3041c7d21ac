"""``builtin:tiny-gpt2``: a small GPT-2 built on this machine, with no network.

A real byte-level BPE tokenizer is trained on the project's own English text (``_corpus.py``)
and a GPT-2 architecture causal LM is initialised from a fixed seed, then both are saved with
``save_pretrained`` so the model loads through the same ``from_pretrained`` path as any local
model directory. The weights are random (the model talks nonsense), but generation does the same
work per token as a trained model of the same shape, which is what an energy measurement needs.

Every step is deterministic: the same versions of torch/transformers/tokenizers produce the same
files, byte for byte. Change anything here and bump ``BUILD_VERSION`` so that old caches are not
mistaken for the new model.

torch, transformers and tokenizers are imported inside ``build`` only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from llenergymeasure.measurement.models._corpus import CORPUS

BUILD_VERSION = 1
SEED = 1234
SPECIAL_TOKEN = "<|endoftext|>"

VOCAB_SIZE_TARGET = 4096  # an upper bound: the corpus yields ~2.3k tokens
ARCHITECTURE: dict[str, Any] = {
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 128,
    "n_positions": 1024,
}


def build_tokenizer() -> Any:
    """Train the byte-level BPE and wrap it as a ``PreTrainedTokenizerFast`` (left padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE_TARGET,
        min_frequency=1,
        special_tokens=[SPECIAL_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL_TOKEN,
        eos_token=SPECIAL_TOKEN,
        unk_token=SPECIAL_TOKEN,
        pad_token=SPECIAL_TOKEN,
        padding_side="left",
        model_max_length=ARCHITECTURE["n_positions"],
        clean_up_tokenization_spaces=False,
    )


def build(target: Path) -> None:
    """Write the tokenizer and the seeded model into ``target`` (an existing, empty directory)."""
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    tokenizer = build_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKEN)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        **ARCHITECTURE,
    )
    # The default init draws from the global RNG (fork_rng keeps the caller's stream intact);
    # every value is then overwritten from a private generator, so concurrent builds in threads
    # of one process cannot interleave their draws.
    with torch.random.fork_rng(devices=[]):
        model = GPT2LMHeadModel(config)
    _seeded_init(torch, model, n_layer=ARCHITECTURE["n_layer"])
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id
    )
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    _portable_tokenizer_class(target / "tokenizer_config.json")


def _portable_tokenizer_class(path: Path) -> None:
    """Name the tokenizer class transformers 4.x and 5.x both know (5.x writes its new name)."""
    import json

    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _seeded_init(torch: Any, model: Any, *, n_layer: int) -> None:
    """GPT-2's initialisation, drawn from ``torch.Generator().manual_seed(SEED)``.

    Weights ~ N(0, 0.02), residual projections (``c_proj``) ~ N(0, 0.02 / sqrt(2 * n_layer)),
    LayerNorm scales 1, biases 0. Tied parameters (lm_head = wte) appear once.
    """
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.zero_()
            elif ".ln_" in name:
                param.fill_(1.0)
            else:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                param.normal_(mean=0.0, std=std, generator=generator)
