"""Counting and cutting text in a tokenizer's tokens, for every prompt source."""

from __future__ import annotations

from typing import Any


def token_ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    """``text``'s token ids, with the tokenizer's special tokens when ``special`` (quietly)."""
    return list(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def truncate_prompt(text: str, tokenizer: Any, max_input_tokens: int) -> str:
    """``text`` cut to at most ``max_input_tokens`` tokens (special tokens included)."""

    def n_tokens(value: str) -> int:
        return len(token_ids(tokenizer, value, special=True))

    if n_tokens(text) <= max_input_tokens:
        return text
    special = n_tokens("")
    ids = token_ids(tokenizer, text, special=False)
    budget = max_input_tokens - special
    while budget > 0:
        candidate = str(tokenizer.decode(ids[:budget], skip_special_tokens=True))
        if n_tokens(candidate) <= max_input_tokens:  # decode/encode may merge across the cut
            return candidate
        budget -= 1
    return ""
