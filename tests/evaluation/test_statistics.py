"""Paired statistics: exact p-values and intervals on cases whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prompthone.evaluation.evaluator import EvalResult, ExampleResult
from prompthone.evaluation.statistics import (
    PairedComparison,
    compare_results,
    mean_over_runs_and_examples,
    paired_comparison,
    resolvable_difference,
    sign_test_p,
)
from prompthone.tasks.example import Example, Task
from prompthone.tasks.metrics import macro_f1_score


def test_the_exact_test_is_the_binomial_of_the_discordant_pairs() -> None:
    assert sign_test_p(10, 0) == pytest.approx(2 * 0.5**10)  # every disagreement one way
    assert sign_test_p(3, 1) == pytest.approx(10 / 16)  # P(X <= 1 or X >= 3), X ~ Bin(4, 1/2)
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(0, 0) == 1.0  # no disagreement: no evidence
    assert sign_test_p(6, 0) < 0.05 < sign_test_p(5, 0)  # why six is the least the exact test can call real


def test_a_paired_comparison_of_0_1_scores_is_mcnemar_with_its_interval() -> None:
    # 200 examples: A right and B wrong on 40, the reverse on 20, the same on 140.
    a = [1.0] * 40 + [0.0] * 20 + [1.0] * 70 + [0.0] * 70
    b = [0.0] * 40 + [1.0] * 20 + [1.0] * 70 + [0.0] * 70
    c = paired_comparison(a, b)
    assert (c.n, c.wins, c.losses, c.ties, c.test) == (200, 40, 20, 140, "mcnemar-exact")
    assert c.difference == pytest.approx(0.1) and (c.score_a, c.score_b) == (0.55, 0.45)
    assert c.p_value == pytest.approx(sign_test_p(40, 20))
    # normal approximation: sd of the differences sqrt(0.3 - 0.01), se = sd / sqrt(200): 0.1 ± 0.0746
    assert c.low == pytest.approx(0.1 - 0.0746, abs=0.01) and c.high == pytest.approx(0.1 + 0.0746, abs=0.01)
    assert c.significant and c.describe().startswith("improved by +0.100 (95% CI +0.0")
    assert paired_comparison(a, b) == c  # seeded: the same inputs give the same interval


def test_no_difference_and_no_spread() -> None:
    same = paired_comparison([1, 0, 1, 1], [1, 0, 1, 1])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not same.significant and same.describe().startswith("no significant difference: +0.000")
    shifted = paired_comparison([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])  # every difference +0.25: no spread
    assert (shifted.low, shifted.high, shifted.test) == (0.25, 0.25, "permutation")
    assert shifted.p_value == pytest.approx(2 / 8)  # 3 flips: only all + or all - reach |mean| 0.25
    # one example differs, by a fraction (means over seeds): both of its sign flips are as extreme, p = 1
    single = paired_comparison([0.5, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0])
    assert (single.test, single.p_value, single.difference) == ("permutation", 1.0, 0.125)
    noisy = paired_comparison([1, 0] * 5, [0, 1] * 5)
    assert noisy.low < 0 < noisy.high and "no significant difference" in noisy.describe()
    worse = paired_comparison([0.0] * 30, [1.0] * 30)
    assert worse.describe().startswith("worse by -1.000")


def test_a_comparison_survives_its_dict() -> None:
    c = paired_comparison([1, 1, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 1])
    d = c.to_dict()
    assert d["significant"] == c.significant
    assert PairedComparison.from_dict({**d, "extra": 1}) == c


def test_a_metric_that_is_no_mean_is_recomputed_on_each_resample() -> None:
    labels = ("yes", "no")
    task = Task("t", (), (), tuple(Example(str(i), t) for i, t in enumerate(["yes"] * 8 + ["no"] * 2)),
                metric="macro_f1", labels=labels)
    targets = [e.target for e in task.test]
    pa = ["yes"] * 8 + ["no"] * 2  # perfect
    pb = ["yes"] * 10  # the majority label: accuracy 0.8, macro-F1 (8/9 + 0) / 2

    def result(predictions: list[str]) -> EvalResult:
        rows = tuple(ExampleResult(e.input, e.target, p, float(p == e.target), p)
                     for e, p in zip(task.test, predictions, strict=True))
        return EvalResult(macro_f1_score(predictions, targets, labels), rows)

    c = compare_results(result(pa), result(pb), task)
    assert c.score_a == 1.0 and c.score_b == pytest.approx((16 / 18) / 2)
    assert c.difference == pytest.approx(1 - 4 / 9)  # the metric's difference, not the accuracy's 0.2
    assert (c.wins, c.losses) == (2, 0) and c.low <= c.difference <= c.high
    with pytest.raises(ValueError, match="same examples"):
        compare_results(result(pa), EvalResult(0.0, result(pb).examples[::-1]), task)


def test_what_a_split_can_resolve() -> None:
    z = 1.959964 + 0.841621
    assert resolvable_difference(48) == pytest.approx(z * math.sqrt(0.25 / 48), rel=1e-5)  # ~0.20
    assert resolvable_difference(16) == pytest.approx(6 / 16)  # the exact test's floor binds
    assert resolvable_difference(1000) < 0.05 and resolvable_difference(0) == math.inf
    assert np.isclose(resolvable_difference(200, discordance=0.1), z * math.sqrt(0.1 / 200))


def test_the_mean_over_runs_and_examples_counts_both_variances() -> None:
    rng = np.random.default_rng(1)
    examples = rng.integers(0, 2, size=200).astype(float)
    # one deterministic run repeated: the interval is the examples' bootstrap, not zero width as a t over runs
    mean, low, high = mean_over_runs_and_examples([examples] * 5)
    se = examples.std() / np.sqrt(200)
    assert mean == pytest.approx(examples.mean())
    assert low == pytest.approx(mean - 1.96 * se, abs=0.01) and high == pytest.approx(mean + 1.96 * se, abs=0.01)
    # runs that differ a lot widen it beyond the examples' share
    runs = [np.clip(examples + shift, 0, 1) for shift in (-1, 0, 0, 0, 1)]
    _, wide_low, wide_high = mean_over_runs_and_examples(runs)
    assert wide_high - wide_low > 2 * (high - low)
    assert mean_over_runs_and_examples([[1.0, 1.0]]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="runs × examples"):
        mean_over_runs_and_examples([])
