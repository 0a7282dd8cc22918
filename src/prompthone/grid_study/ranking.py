"""Where an optimized prompt ranks among the hand combinations on dev (the paper's headline comparison)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Ranking:
    """Rank `rank` among the hand combos and the prompt itself (`of` = combos + 1): 1 + the combos with a strictly
    higher full-dev score, so rank 1 is at least as good as every hand combo and rank `of` is below all of them.

    `compared` is how many combos were scored on the whole dev split (all of them without halving). With
    halving, pruned combos are taken to be below every survivor (that is why they were pruned); when the
    prompt is below every survivor its true place among the pruned ones is unknown and `at_best` is set:
    the rank is then a best case.
    """

    dev_score: float
    rank: int
    of: int
    better: int
    ties: int
    compared: int
    at_best: bool

    def describe(self) -> str:
        """'rank 3 of 121', 'rank 1 of 121 (tied with 2)', or 'rank ≥ 15 of 121' when the rank is a best case."""
        tied = f" (tied with {self.ties})" if self.ties else ""
        return f"rank {'≥ ' if self.at_best else ''}{self.rank} of {self.of}{tied}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.describe()}


def rank_among(score: float, full_dev_scores: Sequence[float], n_combos: int) -> Ranking:
    """Rank a prompt's dev score among the hand combos scored on the full dev split (`n_combos` in the grid)."""
    if len(full_dev_scores) > n_combos:
        raise ValueError(f"{len(full_dev_scores)} full-dev scores for a grid of {n_combos} combos")
    # A prompt with no dev score (NaN) ranks below every hand combo it could be compared with.
    better = sum(1 for s in full_dev_scores if s > score or math.isnan(score))
    ties = sum(1 for s in full_dev_scores if s == score)
    compared = len(full_dev_scores)
    return Ranking(dev_score=score, rank=better + 1, of=n_combos + 1, better=better, ties=ties, compared=compared,
                   at_best=better == compared and compared < n_combos)
