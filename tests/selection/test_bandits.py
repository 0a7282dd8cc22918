"""Bandit selectors on synthetic Bernoulli arms with known means: what the theory promises, exact budgets."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from prompthone.errors import ConfigError
from prompthone.selection import (
    SELECTORS,
    brute_force,
    get_selector,
    successive_halving,
    successive_rejects,
    ucb,
    ucb_e,
    ucb_index,
    ucb_index_rounds,
    ucbe_index,
)

MEANS = [0.2, 0.35, 0.5, 0.45, 0.8, 0.3]
BEST = 4


class BernoulliArms:
    """Arms with known success probabilities; counts every pull."""

    def __init__(self, means: Sequence[float], seed: int) -> None:
        self.means = list(means)
        self.rng = random.Random(seed)
        self.pulls = [0] * len(means)

    def __call__(self, arm: int, n: int) -> list[float]:
        self.pulls[arm] += n
        return [1.0 if self.rng.random() < self.means[arm] else 0.0 for _ in range(n)]


def _run(name: str, arms: BernoulliArms, k: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    if name in ("ucb", "ucb-e"):
        res = SELECTORS[name](len(arms.means), k, arms, rounds=8, arms_per_round=3, samples_per_pull=24, rng=rng)
    else:
        res = SELECTORS[name](len(arms.means), k, arms, budget=480, rng=rng)
    return res.chosen


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_finds_the_best_arm_in_95_percent_of_seeded_trials(name: str) -> None:
    hits = sum(_run(name, BernoulliArms(MEANS, seed), 1, seed) == [BEST] for seed in range(100))
    assert hits >= 95, f"{name}: {hits}/100"


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_top_k_contains_the_best_arm(name: str) -> None:
    hits = sum(BEST in _run(name, BernoulliArms(MEANS, seed), 2, seed) for seed in range(50))
    assert hits >= 48


@pytest.mark.parametrize("selector", [successive_rejects, successive_halving, brute_force])
@pytest.mark.parametrize(("n_arms", "k", "budget"), [(6, 1, 480), (6, 2, 101), (9, 4, 97), (2, 1, 7), (3, 3, 10)])
def test_elimination_methods_spend_exactly_their_budget(selector, n_arms: int, k: int, budget: int) -> None:
    arms = BernoulliArms([0.5] * n_arms, 0)
    res = selector(n_arms, k, arms, budget=budget, rng=random.Random(0))
    assert sum(arms.pulls) == budget == res.pulls
    assert res.counts == arms.pulls
    assert len(res.chosen) == min(k, n_arms) and len(set(res.chosen)) == len(res.chosen)


def test_successive_rejects_follows_the_classic_schedule() -> None:
    """K = 4, k = 1, budget 100: loḡ(4) = 1/2 + 1/2 + 1/3 + 1/4; n_j = ⌈96 / (loḡ · (5 − j))⌉ = 16, 21, 31."""
    log_bar = 0.5 + 1 / 2 + 1 / 3 + 1 / 4
    expected = [math.ceil(96 / (log_bar * (5 - j))) for j in (1, 2, 3)]
    assert expected == [16, 21, 31]
    arms = BernoulliArms([0.1, 0.2, 0.3, 0.9], 1)
    res = successive_rejects(4, 1, arms, budget=100)
    assert [len(h) for h in res.history] == [4, 3, 2]
    # the rejected arms stop at the schedule; the two finalists share the rest of the budget (100 − 16 − 21)
    rejected = sorted(arms.pulls)[:2]
    assert rejected == [16, 21]
    assert sum(sorted(arms.pulls)[2:]) == 63


def test_successive_halving_halves_each_round() -> None:
    res = successive_halving(8, 1, BernoulliArms([0.1] * 7 + [0.9], 0), budget=240)
    assert [len(h) for h in res.history] == [8, 4, 2]
    assert res.chosen == [7]


def test_ucb_index_is_exact_and_puts_unpulled_arms_first() -> None:
    assert ucb_index(0.5, 4, 100, 2.0) == pytest.approx(0.5 + 2.0 * math.sqrt(math.log(100) / 4))
    assert ucb_index(0.9, 0, 1, 1.0) == math.inf
    assert ucb_index(0.5, 3, 0, 1.0) == 0.5  # t is clamped to ≥ 1 (log 1 = 0), never log 0
    assert ucbe_index(0.5, 4, 2.0) == pytest.approx(0.5 + 2.0 * math.sqrt(2.0 / 4))


def test_ucb_pulls_every_arm_before_exploiting_with_the_pulls_index() -> None:
    arms = BernoulliArms([0.5] * 6, 0)
    res = ucb(6, 1, arms, rounds=2, arms_per_round=3, samples_per_pull=4, rng=random.Random(3), time="pulls")
    assert sorted(res.history[0] + res.history[1]) == list(range(6))
    assert res.pulls == 24


def test_the_reference_index_counts_rounds_and_explores_less_than_the_pulls_index() -> None:
    # ProTeGi's reference: mean + c·sqrt(log t / (n + 0.001)), t the round number
    assert ucb_index_rounds(0.5, 32, 8, 1.0) == pytest.approx(0.5 + math.sqrt(math.log(8) / 32.001))
    assert ucb_index_rounds(0.5, 32, 1, 1.0) == 0.5  # round 1: log 1 = 0, a greedy round, as in the reference
    assert ucb_index_rounds(0.0, 0, 2, 1.0) > 20  # an unpulled arm: a large, finite bonus
    # after 8 rounds × 8 prompts × 32 examples the pulls index's bonus is ~1.9× the reference's
    ratio = (ucb_index(0.0, 32, 8 * 8 * 32, 1.0)) / ucb_index_rounds(0.0, 32, 8, 1.0)
    assert ratio == pytest.approx(math.sqrt(math.log(2048) / math.log(8)), rel=1e-3) and 1.85 < ratio < 1.95


class SameReward:
    """Every arm pays 0.6 on every pull: only exploration can make a selector look at another arm."""

    def __init__(self, n: int) -> None:
        self.pulls = [0] * n

    def __call__(self, arm: int, n: int) -> list[float]:
        self.pulls[arm] += n
        return [0.6] * n


def test_reference_ucb_explores_every_arm_where_a_greedy_allocator_never_leaves_its_first_pick() -> None:
    rounds = []
    arms = SameReward(9)
    ucb(9, 1, arms, rounds=4, arms_per_round=3, samples_per_pull=4, c=1.0, rng=random.Random(0),
        on_round=lambda: rounds.append(list(arms.pulls)))
    assert all(p > 0 for p in arms.pulls)  # round 0 at random, round 1 greedy, rounds 2-3 the unpulled arms
    assert len(rounds) == 4 and rounds[0] == [0] * 9  # on_round comes before each round's pulls
    greedy = SameReward(9)
    ucb(9, 1, greedy, rounds=4, arms_per_round=3, samples_per_pull=4, c=0.0, rng=random.Random(0))
    assert sum(p > 0 for p in greedy.pulls) == 3  # c = 0 is greedy: the first three arms, forever


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_every_selector_announces_its_rounds(name: str) -> None:
    calls: list[int] = []
    arms = BernoulliArms(MEANS, 0)
    if name in ("ucb", "ucb-e"):
        SELECTORS[name](6, 1, arms, rounds=5, arms_per_round=2, samples_per_pull=4,
                        on_round=lambda: calls.append(sum(arms.pulls)))
        assert len(calls) == 5
    else:
        res = SELECTORS[name](6, 1, arms, budget=120, on_round=lambda: calls.append(sum(arms.pulls)))
        assert len(calls) == len(res.history)
    assert calls == sorted(calls) and calls[0] == 0


def test_ucb_respects_a_budget() -> None:
    arms = BernoulliArms(MEANS, 0)
    res = ucb_e(6, 2, arms, rounds=8, arms_per_round=8, samples_per_pull=32, budget=100)
    assert sum(arms.pulls) == 100 == res.pulls


def test_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="unknown selector"):
        get_selector("thompson")
    with pytest.raises(ConfigError, match="budget"):
        successive_rejects(5, 1, BernoulliArms([0.5] * 5, 0), budget=3)
    with pytest.raises(ValueError, match="returned"):
        brute_force(2, 1, lambda arm, n: [1.0], budget=4)
