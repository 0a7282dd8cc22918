"""Successive halving over the grid on fake scores (exact survivors, pruning rungs, calls saved) and the ranking."""

from __future__ import annotations

import math
import random

import pytest

from prompthone.errors import ConfigError
from prompthone.grid_study.halving import calls_saved, rung_sizes, successive_halving
from prompthone.grid_study.ranking import rank_among

# Fake scores per slice size: rung 0 (2 examples) ranks 1 > 5 > 3 > 7 ...; rung 1 (4 examples) flips 1 and 5.
SCORES = {2: [0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.3, 0.6, 0.4],
          4: [math.nan, 0.5, math.nan, 0.6, math.nan, 0.75, math.nan, math.nan, math.nan],
          8: [math.nan] * 5 + [0.7] + [math.nan] * 3}


def test_rung_sizes() -> None:
    assert rung_sizes(120, 100, eta=3, min_slice=10) == [12, 34, 100]
    assert rung_sizes(120, 12, eta=3, min_slice=10) == [12]  # too few examples for a second rung
    assert rung_sizes(4, 1000, eta=2, min_slice=1) == [250, 500, 1000]  # too few arms for a fourth
    assert rung_sizes(8, 24, eta=2, min_slice=3) == [3, 6, 12, 24]
    assert rung_sizes(1, 50) == [50]
    with pytest.raises(ConfigError, match="eta"):
        rung_sizes(9, 90, eta=1)
    with pytest.raises(ConfigError, match="min_slice"):
        rung_sizes(9, 90, min_slice=0)


def test_successive_halving_keeps_the_top_third_per_rung() -> None:
    asked: list[tuple[int, int]] = []

    def score(arm: int, n: int) -> float:
        asked.append((arm, n))
        return SCORES[n][arm]

    result = successive_halving(9, [2, 4, 8], score, eta=3)
    assert [(r.size, r.arms, r.promoted) for r in result.rungs] == [
        (2, tuple(range(9)), (1, 5, 3)), (4, (1, 5, 3), (5,)), (8, (5,), (5,))]
    assert sorted(asked) == sorted([(a, 2) for a in range(9)] + [(1, 4), (5, 4), (3, 4), (5, 8)])
    assert result.survivors == (5,)
    assert result.pruned_at == (0, 1, 0, 1, 0, None, 0, 0, 0)
    assert result.sizes == (2, 4, 2, 4, 2, 8, 2, 2, 2)
    assert result.scores[5] == 0.7 and result.scores[1] == 0.5 and result.scores[0] == 0.1
    assert result.history[5] == (0.8, 0.75, 0.7) and result.history[1] == (0.9, 0.5) and result.history[0] == (0.1,)
    # Survivors first, then the arms pruned at later rungs, each group by its last score.
    assert result.order == (5, 3, 1, 7, 2, 8, 6, 4, 0)


def test_calls_saved_counts_each_arms_calls_per_example() -> None:
    sizes = (2, 4, 2, 4, 2, 8, 2, 2, 2)
    per_example = [1, 2, 1, 2, 1, 1, 1, 1, 1]  # arms 1 and 3 reason first: two calls per example
    calls = [c * n for c, n in zip(per_example, sizes, strict=True)]
    assert sum(calls) == 36
    saved = calls_saved(calls, sizes, 8)
    assert saved == 6 * 6 + 2 * 4 * 2 == 52
    assert sum(calls) + saved == 6 * 8 + 2 * 16 + 8  # the full grid's calls
    assert calls_saved([8, 16], [8, 8], 8) == 0


def test_one_size_is_the_full_grid() -> None:
    result = successive_halving(4, [5], lambda arm, n: [0.2, 0.6, 0.4, 0.6][arm], rng=random.Random(3))
    assert result.pruned_at == (None,) * 4 and result.survivors == (0, 1, 2, 3) and result.sizes == (5,) * 4
    assert result.order[2:] == (2, 0) and set(result.order[:2]) == {1, 3}


def test_ties_are_broken_by_the_seeded_permutation() -> None:
    def run(seed: int) -> tuple[int, ...]:
        return successive_halving(27, [3, 9, 27], lambda arm, n: 0.5, eta=3, rng=random.Random(seed)).survivors

    assert run(1) == run(1) and len(run(1)) == 3
    assert len({run(s) for s in range(8)}) > 1
    equal = successive_halving(27, [3, 9, 27], lambda arm, n: 0.5, eta=3, rng=random.Random(0))
    assert [len(r.arms) for r in equal.rungs] == [27, 9, 3]
    assert sum(p == 0 for p in equal.pruned_at) == 18 and sum(p == 1 for p in equal.pruned_at) == 6


def test_bad_sizes() -> None:
    for sizes in ([], [4, 4], [8, 4], [0, 3]):
        with pytest.raises(ConfigError, match="increasing"):
            successive_halving(3, sizes, lambda arm, n: 0.0)


def test_rank_among_hand_combos() -> None:
    full = [0.9, 0.8, 0.8, 0.7]
    top = rank_among(0.95, full, 4)
    assert (top.rank, top.of, top.better, top.ties, top.at_best) == (1, 5, 0, 0, False)
    assert top.describe() == "rank 1 of 5"
    mid = rank_among(0.8, full, 4)
    assert (mid.rank, mid.better, mid.ties) == (2, 1, 2) and mid.describe() == "rank 2 of 5 (tied with 2)"
    last = rank_among(0.1, full, 4)
    assert (last.rank, last.at_best) == (5, False)
    assert rank_among(math.nan, full, 4).rank == 5


def test_rank_among_survivors_of_halving_is_a_best_case_below_all_of_them() -> None:
    inside = rank_among(0.75, [0.9, 0.8, 0.7], 120)
    assert (inside.rank, inside.of, inside.compared, inside.at_best) == (3, 121, 3, False)
    below = rank_among(0.5, [0.9, 0.8, 0.7], 120)
    assert (below.rank, below.at_best) == (4, True) and below.describe() == "rank ≥ 4 of 121"
    assert below.to_dict()["text"] == "rank ≥ 4 of 121"
    with pytest.raises(ValueError):
        rank_among(0.5, [0.1, 0.2], 1)
