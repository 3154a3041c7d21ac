"""What a grid validation found, as counts with bounded examples: its size never grows with the
grid, so a million-point campaign summarises in the memory of a small one.

``GridTally`` is built one outcome at a time by the validator, or from the full lists of a
``GridExpansionResult``; the summary line, the per-backend table and the grouped reasons come
from it alone, whichever way it was built.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

IssueKind = Literal["filtered", "duplicates", "warned"]
KINDS: tuple[IssueKind, ...] = ("filtered", "duplicates", "warned")
EXAMPLES_KEPT = 1000
"""Issues of each kind a tally keeps as examples (the counts cover all of them)."""


class GridValidationIssue(BaseModel):
    """One grid point that was filtered, deduplicated or flagged."""

    config_desc: str = Field(description="Readable name of the config, e.g. pytorch_gpt2_bf16_bs4.")
    reason: str = Field(description="Why it was filtered or flagged, with the fix.")
    severity: Literal["error", "warning"] = Field(
        description="error: filtered out; warning: kept, may fail at run time."
    )
    backend: str | None = None
    rule: str | None = Field(None, description="Short label used to group reasons.")


class GridTally:
    """Counts per backend and kind, filter reasons grouped by rule with the first example of
    each, warning reasons, exclusions, and the first ``EXAMPLES_KEPT`` issues of each kind."""

    def __init__(self) -> None:
        self.total = 0
        """Every point generated, excluded ones included."""
        self.counts: dict[str, Counter[str]] = {
            kind: Counter() for kind in ("valid", *KINDS, "excluded")
        }
        """Per kind, per backend (in first-seen order)."""
        self.rules: Counter[str] = Counter()
        """Filtered points per rule (or reason, where no rule names the cause)."""
        self.first_of_rule: dict[str, GridValidationIssue] = {}
        self.warning_reasons: Counter[str] = Counter()
        self.examples: dict[IssueKind, list[GridValidationIssue]] = {kind: [] for kind in KINDS}
        self.excluded: dict[str, int] = {}
        """Points dropped by grid.exclude before validation, per rule (the first that matched)."""
        self.notes: list[str] = []
        self.backend_requirements: dict[str, str] = {}

    @classmethod
    def of_lists(
        cls,
        valid_backends: list[str],
        issues: dict[IssueKind, list[GridValidationIssue]],
        total: int,
        excluded: dict[str, int],
        excluded_per_backend: dict[str, int],
    ) -> GridTally:
        tally = cls()
        for backend in valid_backends:
            tally.kept(backend)
        for kind, found in issues.items():
            for issue in found:
                tally.add(kind, issue)
        tally.total = total
        tally.excluded = dict(excluded)
        tally.counts["excluded"].update(excluded_per_backend)
        return tally

    def kept(self, backend: str) -> None:
        self.counts["valid"][backend] += 1

    def add(self, kind: IssueKind, issue: GridValidationIssue) -> None:
        self.counts[kind][issue.backend or "?"] += 1
        examples = self.examples[kind]
        if len(examples) < EXAMPLES_KEPT:
            examples.append(issue)
        if kind == "filtered":
            rule = issue.rule or issue.reason
            self.rules[rule] += 1
            self.first_of_rule.setdefault(rule, issue)
        elif kind == "warned":
            self.warning_reasons[issue.reason] += 1

    def exclude(self, rule: str, backend: str) -> None:
        self.total += 1
        self.excluded[rule] = self.excluded.get(rule, 0) + 1
        self.counts["excluded"][backend] += 1

    def count(self, kind: str) -> int:
        return sum(self.counts[kind].values())

    @property
    def valid(self) -> int:
        return self.count("valid")

    @property
    def excluded_count(self) -> int:
        return sum(self.excluded.values())

    @property
    def per_backend(self) -> dict[str, dict[str, int]]:
        """valid / excluded / filtered / duplicates / warned counts per backend, backends in
        first-seen order (valid ones first, then those with filtered, duplicate, warned and
        excluded points)."""
        kinds = ("valid", "excluded", *KINDS)
        order = dict.fromkeys(
            b for kind in ("valid", *KINDS, "excluded") for b in self.counts[kind]
        )
        return {b: {kind: self.counts[kind][b] for kind in kinds} for b in order}

    def grouped_reasons(self) -> list[tuple[str, int]]:
        """Filter reasons grouped by rule, most frequent first."""
        return self.rules.most_common()

    def filtered_examples(self) -> list[tuple[str, str]]:
        """(config, reason) of the filtered points kept as examples, and a last row saying how
        many more there were, by rule (what a campaign's manifest records)."""
        shown = [(i.config_desc, i.reason) for i in self.examples["filtered"]]
        more = self.count("filtered") - len(shown)
        if more:
            rules = "; ".join(f"{rule} x {n}" for rule, n in self.grouped_reasons())
            shown.append((f"... and {more:,} more", f"all filtered, by rule: {rules}"))
        return shown

    @property
    def summary(self) -> str:
        text = f"Generated {self.total} experiments: {self.valid} valid"
        if self.excluded:
            rules = ", ".join(f"{rule} x {n}" for rule, n in Counter(self.excluded).most_common())
            text += f", {self.excluded_count} excluded ({rules})"
        filtered = self.count("filtered")
        if filtered:
            groups = ", ".join(f"{rule} x {n}" for rule, n in self.grouped_reasons())
            text += f", {filtered} filtered as invalid ({groups})"
        else:
            text += ", 0 filtered as invalid"
        text += f", {self.count('duplicates')} duplicates."
        if self.count("warned"):
            text += f" {self.count('warned')} have hardware warnings."
        return text


__all__ = ["EXAMPLES_KEPT", "KINDS", "GridTally", "GridValidationIssue", "IssueKind"]
