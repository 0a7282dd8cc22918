"""Instance-wise Pareto fronts and GEPA's parent sampling, with exact numbers on hand-made score tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from prompthone.errors import ConfigError
from prompthone.selection import (
    front_counts,
    instance_fronts,
    nondominated,
    remove_dominated,
    select_from_pareto_front,
)


def _mean(scores: dict[int, list[float]]) -> dict[int, float]:
    return {c: sum(s) / len(s) for c, s in scores.items()}


def test_fronts_hold_every_co_best_candidate() -> None:
    scores = {0: [1.0, 0.0, 0.5], 1: [1.0, 0.0, 0.25], 2: [0.0, 0.0, 0.5]}
    assert instance_fronts(scores) == [{0, 1}, {0, 1, 2}, {0, 2}]
    assert instance_fronts({}) == []
    with pytest.raises(ConfigError, match="lengths"):
        instance_fronts({0: [1.0], 1: [1.0, 0.0]})


def test_a_candidate_whose_wins_are_all_shared_is_dominated() -> None:
    scores = {0: [1.0, 1.0, 0.0], 1: [1.0, 0.0, 0.0], 2: [0.0, 0.0, 1.0], 3: [0.0, 0.0, 0.0]}
    fronts = remove_dominated(instance_fronts(scores), _mean(scores))
    assert fronts == [{0}, {0}, {2}]  # 1 only ever ties with 0; 3 is best nowhere
    assert front_counts(fronts) == {0: 2, 2: 1}
    assert nondominated(scores, _mean(scores)) == [0, 2]


def test_mutual_cover_removes_one_at_a_time_and_every_front_keeps_a_candidate() -> None:
    # Each candidate's wins are covered by the other two; removing all would empty fronts.
    scores = {0: [1.0, 1.0, 0.0, 0.0], 1: [1.0, 0.0, 1.0, 0.0], 2: [0.0, 1.0, 1.0, 0.0]}
    fronts = remove_dominated(instance_fronts(scores), _mean(scores))
    assert all(fronts)
    assert fronts == [{0, 1}, {0}, {1}, {0, 1}]  # equal aggregates: the newest (2) goes first
    assert front_counts(fronts) == {0: 3, 1: 3}


def test_of_two_co_best_candidates_the_lower_aggregate_is_removed() -> None:
    # 0 and 1 cover each other on examples 0-1 (either could go); 1 goes, having the lower aggregate.
    scores = {0: [1.0, 1.0, 0.5], 1: [1.0, 1.0, 0.0], 2: [0.0, 0.0, 1.0]}
    assert nondominated(scores, _mean(scores)) == [0, 2]
    twins = {0: [1.0, 0.0], 1: [1.0, 0.0]}
    assert nondominated(twins, _mean(twins)) == [0]  # identical scores: the older survives


def test_sampling_frequency_is_proportional_to_examples_won() -> None:
    # 0 wins 3 examples alone, 1 wins 1, 2 is dominated (only ties with 0), 3 wins 2 (one shared with 1).
    scores = {0: [1, 1, 1, 0, 0, 0, 0.0], 1: [0, 0, 0, 1, 1, 0, 0.0], 2: [1, 1, 0, 0, 0, 0, 0.0],
              3: [0, 0, 0, 0, 1, 1, 0.0]}
    aggregate = _mean({c: [float(x) for x in s] for c, s in scores.items()})
    fronts = remove_dominated(instance_fronts(scores), aggregate)
    counts = front_counts(fronts)
    # example 6: everyone scores 0, so everyone non-dominated is co-best there
    assert counts == {0: 4, 1: 3, 3: 3}
    rng = random.Random(7)
    draws = Counter(select_from_pareto_front(scores, aggregate, rng) for _ in range(20000))
    assert 2 not in draws
    total = sum(counts.values())
    for cand, n in counts.items():
        assert abs(draws[cand] / 20000 - n / total) < 0.015


def test_sampling_is_reproducible_with_the_same_seed() -> None:
    scores = {0: [1.0, 0.0, 0.0], 1: [0.0, 1.0, 0.0], 2: [0.0, 0.0, 1.0]}
    aggregate = _mean(scores)
    first = [select_from_pareto_front(scores, aggregate, random.Random(3)) for _ in range(5)]
    rng_a, rng_b = random.Random(11), random.Random(11)
    seq_a = [select_from_pareto_front(scores, aggregate, rng_a) for _ in range(50)]
    seq_b = [select_from_pareto_front(scores, aggregate, rng_b) for _ in range(50)]
    assert seq_a == seq_b and len(set(seq_a)) == 3
    assert len(set(first)) == 1


def test_all_ties_leave_one_candidate_and_no_examples_fall_back_to_the_best_aggregate() -> None:
    flat = {0: [0.0, 0.0], 1: [0.0, 0.0], 2: [0.0, 0.0]}
    assert {select_from_pareto_front(flat, _mean(flat), random.Random(s)) for s in range(20)} == {0}
    empty: dict[int, list[float]] = {0: [], 1: [], 2: []}
    assert select_from_pareto_front(empty, {0: 0.2, 1: 0.7, 2: 0.7}, random.Random(0)) == 1
    with pytest.raises(ConfigError):
        select_from_pareto_front({}, {}, random.Random(0))
