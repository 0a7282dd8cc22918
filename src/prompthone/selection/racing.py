"""A successive-halving race sized to a call budget, for arms that share their evaluations.

Successive halving (Karnin et al. 2013; Jamieson & Talwalkar 2016) scores every arm on a small slice, keeps the
best 1/η, scores those on a bigger slice, and so on; with a fixed budget it is near-optimal for best-arm
identification, and TRIPLE (Shi et al. 2024) showed it picks prompts well under a limited budget. Here the slices
are nested prefixes of one example order, so an arm promoted to the next rung pays only for the examples it has not
seen, and the arms are compared on the same examples at every rung (a paired comparison, far less noisy).

Arms share costs: several arms can be one *base* evaluation read differently (a prompt with and without its label
calibration is one set of model calls, read twice), so the plan counts calls per base (`bases_active`), not per arm.
`plan_rungs` picks the largest final slice whose whole race fits the budget; pure functions, exact unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from prompthone.errors import ConfigError


def keep_count(active: int, eta: int, finalists: int = 1) -> int:
    """How many of `active` arms a rung promotes: ⌈active/η⌉, never fewer than `finalists` (nor than one), never
    more than are active."""
    return min(active, max(1, finalists, math.ceil(active / eta)))


def rung_count(n_arms: int, eta: int, finalists: int) -> int:
    """How many rungs halving `n_arms` by η takes until at most `finalists` arms are left, counting the rung that
    scores those finalists on the largest slice (1 when there are no more arms than finalists)."""
    if eta < 2:
        raise ConfigError(f"successive halving needs eta ≥ 2, got {eta}")
    rungs, active = 1, n_arms
    while active > max(1, finalists):
        active = keep_count(active, eta, finalists)
        rungs += 1
    return rungs


@dataclass(frozen=True)
class RacePlan:
    """Slice sizes per rung (non-decreasing, the last one the finalists'), and the calls they are expected to cost."""

    sizes: tuple[int, ...]
    cost: int


def bases_active(n_arms: int, n_bases: int, eta: int, rungs: int, finalists: int = 1) -> list[int]:
    """An upper bound on the bases with an active arm at each rung: min(bases, arms still active)."""
    out, active = [], n_arms
    for _ in range(rungs):
        out.append(min(n_bases, active))
        active = keep_count(active, eta, finalists)
    return out


def slice_sizes(final: int, rungs: int, eta: int, min_slice: int) -> tuple[int, ...]:
    """Sizes final/η^(R−1), …, final/η, final (rounded up), none below `min_slice` (nor above `final`)."""
    return tuple(min(final, max(min_slice, math.ceil(final / eta ** (rungs - 1 - r)))) for r in range(rungs))


def race_cost(sizes: Sequence[int], active: Sequence[int], per_base: int = 0) -> int:
    """Calls a race with these slice sizes costs when `active[r]` bases are scored at rung r, plus `per_base` calls
    for each base that enters (a calibration prior)."""
    cost, seen = active[0] * per_base if active else 0, 0
    for size, bases in zip(sizes, active, strict=True):
        cost += bases * max(0, size - seen)
        seen = max(seen, size)
    return cost


def plan_rungs(n_arms: int, n_bases: int, n_examples: int, budget: int | None, *, eta: int = 2,
               min_slice: int = 8, finalists: int = 2, per_base: int = 0) -> RacePlan | None:
    """The race with the largest final slice (at most `n_examples`) whose cost fits `budget` (None: unlimited).

    None when even a race whose first slice is `min_slice` examples (or all of them, if fewer) does not fit: the
    caller then has too many arms for its budget and should race fewer.
    """
    if n_arms < 1 or n_bases < 1 or n_examples < 1:
        raise ConfigError(f"a race needs arms and examples, got {n_arms} arms, {n_bases} bases, "
                          f"{n_examples} examples")
    rungs = rung_count(n_arms, eta, finalists)
    active = bases_active(n_arms, n_bases, eta, rungs, finalists)
    floor = min(min_slice, n_examples)
    best: RacePlan | None = None
    for final in range(floor, n_examples + 1):  # cost grows with the final slice: stop at the first that overflows
        sizes = slice_sizes(final, rungs, eta, floor)
        cost = race_cost(sizes, active, per_base)
        if budget is not None and cost > budget:
            break
        best = RacePlan(sizes, cost)
    return best
