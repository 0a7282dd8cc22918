"""Successive halving over the hand grid: every variant on a small dev slice, the best 1/η on a bigger one, ...

The rungs follow Jamieson & Talwalkar (2016) / Hyperband's inner loop: slices grow by η (the last is the whole dev
split) and each rung keeps the top ⌈survivors/η⌉. Slices are nested prefixes of dev, so a variant promoted to the
next rung is scored only on the examples it has not seen yet: no call is paid twice. Pure functions of
(arms, slice sizes, a score function): testable with exact numbers on fake scores.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prompthone.errors import ConfigError

#: score(arm, n): the arm's aggregate score on the first n examples.
SliceScore = Callable[[int, int], float]


@dataclass(frozen=True)
class Rung:
    """One rung: the slice size, the arms scored on it, and the arms promoted to the next rung (all, at the last)."""

    index: int
    size: int
    arms: tuple[int, ...]
    promoted: tuple[int, ...]


@dataclass(frozen=True)
class HalvingResult:
    """Every arm's score at the last rung it reached, on how many examples, and the rung it was pruned at.

    `history[arm]` holds the arm's score at each rung it was scored on (`history[arm][0]`: the first slice, the
    one every arm was scored on). `order` is the study's order: survivors by score, then arms pruned later first.
    """

    rungs: tuple[Rung, ...]
    scores: tuple[float, ...]
    sizes: tuple[int, ...]
    pruned_at: tuple[int | None, ...]
    order: tuple[int, ...]
    history: tuple[tuple[float, ...], ...]

    @property
    def survivors(self) -> tuple[int, ...]:
        """The arms scored on the whole split (all of them without halving)."""
        return self.rungs[-1].arms


def rung_sizes(n_arms: int, n_examples: int, *, eta: int = 3, min_slice: int = 10) -> list[int]:
    """Slice sizes, smallest first, ending with `n_examples`: n/η^(R−1), ..., n/η, n (rounded up).

    R is the most rungs such that the first slice still holds `min_slice` examples and the first rung's
    ⌈·/η⌉ cuts still leave ≥ 1 arm per rung (η^(R−1) ≤ n_arms). One rung (no halving) when dev is too small.
    """
    if eta < 2:
        raise ConfigError(f"successive halving needs eta ≥ 2, got {eta}")
    if min_slice < 1:
        raise ConfigError(f"min_slice must be ≥ 1, got {min_slice}")
    if n_examples < 1 or n_arms < 1:
        raise ConfigError(f"need ≥ 1 arm and ≥ 1 example, got {n_arms} arms and {n_examples} examples")
    rungs = 1
    while eta**rungs <= n_arms and n_examples / eta**rungs >= min_slice:
        rungs += 1
    return [math.ceil(n_examples / eta ** (rungs - 1 - r)) for r in range(rungs)]


def successive_halving(n_arms: int, sizes: Sequence[int], score: SliceScore, *, eta: int = 3,
                       rng: random.Random | None = None) -> HalvingResult:
    """Score every arm on `sizes[0]` examples, keep the top ⌈k/η⌉, score them on `sizes[1]`, ... up to `sizes[-1]`.

    Equal scores are broken by one seeded random permutation of the arms (`rng`), used at every rung and in the
    final `order` (survivors by score, then each earlier rung's pruned arms by their score there). With a single
    size every arm is scored on it: the full grid.
    """
    if not sizes or any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
        raise ConfigError(f"slice sizes must be positive and increasing, got {list(sizes)}")
    if eta < 2:
        raise ConfigError(f"successive halving needs eta ≥ 2, got {eta}")
    tiebreak = list(range(n_arms))
    (rng or random.Random(0)).shuffle(tiebreak)
    scores: list[float] = [math.nan] * n_arms
    history: list[list[float]] = [[] for _ in range(n_arms)]
    reached = [0] * n_arms
    pruned_at: list[int | None] = [None] * n_arms
    active = list(range(n_arms))
    rungs: list[Rung] = []
    for r, size in enumerate(sizes):
        for arm in active:
            scores[arm] = score(arm, size)
            history[arm].append(scores[arm])
            reached[arm] = size
        ranked = sorted(active, key=lambda a: (-scores[a], tiebreak[a]))
        last = r == len(sizes) - 1
        promoted = ranked if last else ranked[: max(1, math.ceil(len(active) / eta))]
        for arm in ranked[len(promoted):]:
            pruned_at[arm] = r
        rungs.append(Rung(r, size, tuple(active), tuple(promoted)))
        active = promoted
    # Survivors sort before every pruned arm, arms pruned at later rungs before those pruned earlier.
    reached_rung = [len(sizes) if p is None else p for p in pruned_at]
    order = sorted(range(n_arms), key=lambda a: (-reached_rung[a], -scores[a], tiebreak[a]))
    return HalvingResult(tuple(rungs), tuple(scores), tuple(reached), tuple(pruned_at), tuple(order),
                         tuple(tuple(h) for h in history))


def calls_saved(calls: Sequence[int], sizes: Sequence[int], n_examples: int) -> int:
    """Calls a full grid would have made minus the calls made: each arm's calls per example × examples it skipped.

    `calls[i]` is what arm i spent on its `sizes[i]` examples (a CoT prompt costs two calls per example: the
    reasoning, then the answer), so the saving is exact whatever the mix of answering modes.
    """
    saved = 0.0
    for spent, n in zip(calls, sizes, strict=True):
        if n:
            saved += spent / n * (n_examples - n)
    return round(saved)
