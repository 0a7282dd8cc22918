"""What a run hands back: a record after every step (for callbacks and trackers) and the outcome at the end.

Plain data in their own module, so that trackers, the report and the CLI can name these types without importing
the run loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prompthone.evaluation.statistics import PairedComparison
from prompthone.prompts.prompt import Prompt


@dataclass
class StepRecord:
    """What callbacks receive after each step."""

    step: int
    best_id: int | None
    best_score: float | None
    spend: dict[str, object]
    elapsed_s: float
    frontier: list[int] = field(default_factory=list)
    backend: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class OptimizationResult:
    """The outcome of a run: the seed and best prompts with their dev/test scores and what it cost."""

    method: str
    task: str
    best_prompt: Prompt
    seed_prompt: Prompt
    best_dev_score: float
    seed_dev_score: float
    test_score: float
    seed_test_score: float
    best_candidate_id: int
    spend: dict[str, object]
    final_spend: dict[str, object]
    stopped_reason: str
    steps: int
    n_candidates: int
    wall_time_s: float
    run_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, dict[str, int]] = field(default_factory=dict)
    #: best vs seed on test, pair by pair (`PairedComparison.to_dict()`); None without a test split or when the
    #: winner is the seed
    test_comparison: dict[str, Any] | None = None
    #: under a calibration: the seed as written (no prior divided out) on test, and best against it
    uncalibrated_seed_test_score: float | None = None
    vs_uncalibrated_seed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["best_prompt"] = self.best_prompt.to_dict()
        data["seed_prompt"] = self.seed_prompt.to_dict()
        return data

    @property
    def improvement(self) -> str:
        """Best vs seed on test in words: "improved by +0.21 (95% CI ...)" or "no significant difference"."""
        c = self.test_comparison
        if c is None:
            if self.best_candidate_id == 0 or self.best_prompt == self.seed_prompt:
                return "the seed prompt was kept: no candidate beat it on dev"
            return "not compared on test (no test split, or the run stopped before its final scoring)"
        return PairedComparison.from_dict(c).describe()

    @property
    def improvement_over_uncalibrated_seed(self) -> str | None:
        """Under a calibration, best vs the seed as written (uncalibrated) on test in words; None otherwise."""
        c = self.vs_uncalibrated_seed
        return PairedComparison.from_dict(c).describe() if c is not None else None
