"""How a campaign run ended, and the hooks a display uses to follow it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llenergymeasure.orchestration.campaign.manifest import ManifestEntry

if TYPE_CHECKING:
    from llenergymeasure.orchestration.campaign.adaptive import Decision
    from llenergymeasure.orchestration.campaign.plan import CampaignPlan

INTERRUPT_EXIT = 130


class CampaignObserver:
    """Hooks for progress display; every method is optional (the defaults do nothing)."""

    def on_start(self, plan: CampaignPlan, total: int) -> None: ...

    def on_wait(self, reason: str, seconds: float) -> None: ...

    def on_experiment_start(
        self, index: int, total: int, entry: ManifestEntry, eta_s: float | None
    ) -> None: ...

    def on_progress(self, entry: ManifestEntry, message: str) -> None: ...

    def on_experiment_end(
        self, index: int, total: int, entry: ManifestEntry, eta_s: float | None
    ) -> None: ...

    def on_adaptive_round(
        self, added: Sequence[ManifestEntry], decisions: Sequence[Decision]
    ) -> None:
        """Adaptive cycles decided after a full round: ``added`` runs next (none: done)."""

    def on_finish(self, outcome: CampaignOutcome) -> None: ...


@dataclass
class CampaignOutcome:
    """How a campaign run ended."""

    status: Literal["completed", "completed_with_failures", "stopped", "interrupted"]
    output_dir: Path
    counts: dict[str, int]
    failures: list[ManifestEntry]
    executed: int
    wall_s: float
    gaps_s: float = 0.0
    thermal_wait_s: float = 0.0
    schedule_wait_s: float = 0.0
    executor_s: float = 0.0
    export_s: float = 0.0
    release_s: float = 0.0
    stop_reason: str | None = None
    exports: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    moved_to: Path | None = None
    webhook_sent: bool | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return INTERRUPT_EXIT
        return 0 if self.status == "completed" else 1
