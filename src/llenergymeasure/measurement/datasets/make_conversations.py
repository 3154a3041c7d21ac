"""Writes ``data/conversations.jsonl``, the built-in ShareGPT-style request set.

Run ``python -m llenergymeasure.measurement.datasets.make_conversations`` to regenerate it (a
test checks the shipped file is exactly this output). No download: the human turns are the
project's own prompts (``data/prompts.jsonl``), the replies are sentences of the built-in
tokenizer's corpus, their lengths drawn (seeded) from a long-tailed distribution as real chat
replies are: many short answers, a few long ones.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from llenergymeasure.measurement.datasets.loader import builtin_prompts
from llenergymeasure.measurement.models._corpus import CORPUS

SEED = 2026
CONVERSATIONS = 48
REPLY_WORDS_MEDIAN = 40
REPLY_WORDS_MAX = 160
TARGET = Path(__file__).with_name("data") / "conversations.jsonl"


def conversations() -> list[dict[str, object]]:
    """The conversations, each a human turn and the reply it got (ShareGPT's layout)."""
    rng = random.Random(SEED)
    words = re.sub(r"\s+", " ", CORPUS).split(" ")
    prompts = builtin_prompts()
    made: list[dict[str, object]] = []
    for index in range(CONVERSATIONS):
        length = min(
            REPLY_WORDS_MAX, max(3, round(rng.lognormvariate(0.0, 0.8) * REPLY_WORDS_MEDIAN))
        )
        start = rng.randrange(0, len(words) - length)
        reply = " ".join(words[start : start + length])
        made.append(
            {
                "id": f"llem-conv-{index:03d}",
                "conversations": [
                    {"from": "human", "value": prompts[index % len(prompts)]},
                    {"from": "gpt", "value": reply},
                ],
            }
        )
    return made


def render() -> str:
    return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in conversations())


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {CONVERSATIONS} conversations to {TARGET}")
