"""``builtin:synthetic``: seeded prompts of an exact length in tokens.

Each prompt is a seeded sequence of common English words, cut at a word boundary so that
``len(tokenizer(prompt).input_ids)`` (special tokens included, as the backend will count it)
equals the target exactly. The longest word prefix that fits is found by binary search; the last
few tokens are filled with words that add exactly one token each. Should a tokenizer make that
impossible, the token ids are trimmed and decoded instead, and the text is re-checked.
"""

from __future__ import annotations

import random
from typing import Any

from llenergymeasure.measurement.datasets.tokens import token_ids

# fmt: off
WORDS: tuple[str, ...] = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "energy",
    "model",
    "token",
    "answer",
    "measure",
    "light",
    "heat",
    "memory",
    "speed",
    "good",
    "new",
    "first",
    "last",
    "long",
    "great",
    "little",
    "own",
    "other",
    "old",
    "big",
    "high",
    "different",
    "small",
    "large",
    "next",
    "early",
    "young",
    "important",
    "few",
    "public",
    "bad",
    "same",
    "able",
    "make",
    "know",
    "take",
    "see",
    "come",
    "think",
    "look",
    "want",
    "give",
    "use",
    "find",
    "tell",
    "ask",
    "seem",
    "feel",
    "try",
    "leave",
    "call",
    "keep",
    "begin",
    "help",
    "show",
    "hear",
    "play",
    "run",
    "move",
    "live",
    "believe",
    "bring",
    "write",
    "provide",
    "sit",
    "stand",
    "lose",
    "pay",
    "meet",
    "include",
    "continue",
    "learn",
    "quickly",
    "slowly",
    "often",
    "never",
    "always",
    "today",
    "together",
    "again",
    "still",
)


def _counter(tokenizer: Any) -> Any:
    def count(text: str) -> int:
        return len(token_ids(tokenizer, text, special=True))

    return count


def synthetic_prompts(tokenizer: Any, *, count: int, target_tokens: int, seed: int) -> list[str]:
    """``count`` prompts, each exactly ``target_tokens`` tokens long for ``tokenizer``."""
    n_tokens = _counter(tokenizer)
    fillers = [w for w in WORDS if len(token_ids(tokenizer, " " + w, special=False)) == 1]
    return [
        _one_prompt(
            tokenizer, n_tokens, fillers, target_tokens, random.Random(seed * 1_000_003 + i)
        )
        for i in range(count)
    ]


def _one_prompt(
    tokenizer: Any, n_tokens: Any, fillers: list[str], target: int, rng: random.Random
) -> str:
    # Every word adds at least one token, so target + a margin of words always overshoots.
    words = [rng.choice(WORDS) for _ in range(target + 8)]
    words[0] = words[0].capitalize()
    lo, hi = 0, len(words)  # invariant: n_tokens(prefix(lo)) <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if n_tokens(" ".join(words[:mid])) <= target:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    have = n_tokens(text)
    order = fillers[:]
    rng.shuffle(order)
    while have < target:
        for word in order:
            candidate = f"{text} {word}" if text else word
            if n_tokens(candidate) == have + 1:
                text, have = candidate, have + 1
                break
        else:
            break
    if have == target:
        return text
    return _trim_to(tokenizer, n_tokens, " ".join(words), target)


def _trim_to(tokenizer: Any, n_tokens: Any, text: str, target: int) -> str:
    """Fallback: cut token ids and decode; shorten until the re-encoded text fits."""
    special = n_tokens("")
    ids = token_ids(tokenizer, text, special=False)
    budget = max(target - special, 0)
    while budget > 0:
        candidate = tokenizer.decode(ids[:budget], skip_special_tokens=True)
        if n_tokens(candidate) <= target:
            return str(candidate)
        budget -= 1
    return ""
