"""Is the found prompt really better? Paired statistics of two prompts scored on the same examples.

Two prompts scored on the same test examples are compared example by example, never as two independent means:
most of the variance between examples is shared, and a paired analysis sees through it.

- The interval is a **paired bootstrap** (Efron & Tibshirani 1993; Koehn 2004 for NLP): resample the examples
  with replacement, recompute the task's metric for both prompts on the resample, take the 2.5th and 97.5th
  percentiles of the difference (scipy's `bootstrap`, `paired=True`, percentile method). For metrics that are
  not a mean of per-example scores (macro-F1) the metric itself is recomputed on each resample.
- The test is the **exact McNemar test** when per-example scores are 0/1 (the binomial test of the discordant
  pairs: examples one prompt gets right and the other wrong). Otherwise (e.g. scores averaged over seeds, or a
  graded metric) it is the **paired sign-flip permutation test of the mean difference** (Fisher 1935; exact when
  the examples that differ are few, else 10,000 seeded flips): it tests the statistic the interval is about, so the
  two agree, where a sign test would ignore how large each difference is and could call an interval that excludes
  0 insignificant. A custom `statistic` (macro-F1) keeps the exact sign test of the per-example differences.
- A difference whose interval holds 0 is reported as *no significant difference*, whatever its sign.

`resolvable_difference` answers the question to ask *before* a run: how large a gain can a split of n examples
tell from noise at all?
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from prompthone.tasks.metrics import get_metric

if TYPE_CHECKING:
    from prompthone.evaluation.evaluator import EvalResult
    from prompthone.tasks.example import Task

#: resamples of the paired bootstrap: the percentiles of 10,000 move by well under 0.005 between seeds
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
#: the smallest number of one-sided discordant pairs for which the exact two-sided test reaches p < 0.05
MIN_DISCORDANT = 6
#: the share of examples on which two reasonable prompts disagree, assumed by `resolvable_difference`
TYPICAL_DISCORDANCE = 0.25

# statistic(indices) -> (metric of a, metric of b) on the examples at `indices`
PairStatistic = Callable[[np.ndarray], tuple[float, float]]


@dataclass(frozen=True)
class PairedComparison:
    """Prompt A against prompt B on the same n examples: the difference of their scores, its interval and test."""

    n: int
    score_a: float
    score_b: float
    difference: float
    low: float
    high: float
    confidence: float
    wins: int
    losses: int
    ties: int
    p_value: float
    test: str

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (a difference inside its interval is no difference)."""
        return self.low > 0 or self.high < 0

    def describe(self, better: str = "improved", worse: str = "worse") -> str:
        """One line in words: "improved by +0.210 (95% CI +0.120 … +0.300; McNemar p = 0.0030)"."""
        ci = f"{self.confidence:.0%} CI {self.low:+.3f} … {self.high:+.3f}"
        test = {"mcnemar-exact": "McNemar", "permutation": "permutation test"}.get(self.test, "sign test")
        detail = f"({ci}; {test} p = {self.p_value:.2g}, {self.wins} better, {self.losses} worse of {self.n})"
        if not self.significant:
            return f"no significant difference: {self.difference:+.3f} {detail}"
        word = better if self.difference > 0 else worse
        return f"{word} by {self.difference:+.3f} {detail}"

    def cell(self, no_difference: str = "no difference") -> str:
        """One table cell: "+0.120 (+0.050 … +0.190), p=0.003", prefixed "no difference: " (or the wording
        given) when the interval holds 0. Every table of differences (compare, the benchmarks) writes it so."""
        text = f"{self.difference:+.3f} ({self.low:+.3f} … {self.high:+.3f}), p={self.p_value:.2g}"
        return text if self.significant else f"{no_difference}: {text}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "significant": self.significant}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedComparison:
        """The comparison `to_dict` wrote (its `significant` is derived, and unknown keys are ignored)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact p-value of `wins` against `losses` under a fair coin (ties left out); 1.0 with none."""
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def paired_comparison(a: Sequence[float], b: Sequence[float], *, statistic: PairStatistic | None = None,
                      confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> PairedComparison:
    """Compare per-example scores `a` and `b` (same examples, same order).

    `statistic(indices)` gives both prompts' metric on the examples at `indices` when the metric is not the mean
    of the per-example scores (e.g. macro-F1); by default it is the mean. The bootstrap is seeded: the same
    inputs give the same interval.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores must be two sequences of one length, got {x.shape} and {y.shape}")
    n = len(x)
    if n == 0:
        raise ValueError("a paired comparison needs at least one example")
    diff = x - y
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    if statistic is None:
        score_a, score_b = float(x.mean()), float(y.mean())
        low, high = _interval_of_means(diff, confidence, resamples, seed)
    else:
        score_a, score_b = (float(v) for v in statistic(np.arange(n)))
        low, high = _interval_of(statistic, n, confidence, resamples, seed)
    point = score_a - score_b
    if binary:
        test, p_value = "mcnemar-exact", sign_test_p(wins, losses)
    elif statistic is None:
        test, p_value = "permutation", sign_flip_p(diff, resamples, seed)
    else:
        test, p_value = "sign", sign_test_p(wins, losses)
    return PairedComparison(n=n, score_a=score_a, score_b=score_b, difference=point, low=min(low, point),
                            high=max(high, point), confidence=confidence, wins=wins, losses=losses,
                            ties=n - wins - losses, p_value=p_value, test=test)


def sign_flip_p(diff: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float:
    """Two-sided p-value of the paired differences' mean under the null that each difference's sign is a coin
    flip. Zero differences flip to themselves, so they are left out; exact when 2**(nonzero) <= `resamples`.
    With one nonzero difference both flips are as extreme as the observed mean: p = 1 (scipy refuses one
    observation)."""
    nonzero = diff[diff != 0]
    if len(nonzero) < 2:
        return 1.0
    result = stats.permutation_test((nonzero,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="two-sided", random_state=seed)
    return float(min(1.0, result.pvalue))


def _interval_of_means(diff: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    if np.all(diff == diff[0]):  # no spread: every resample has the same mean (scipy would warn and give NaN)
        return float(diff[0]), float(diff[0])
    return _percentile_interval(diff, np.mean, True, confidence, resamples, seed)


def _interval_of(statistic: PairStatistic, n: int, confidence: float, resamples: int,
                 seed: int) -> tuple[float, float]:
    def difference(idx: np.ndarray) -> float:
        a, b = statistic(idx)
        return a - b

    return _percentile_interval(np.arange(n), difference, False, confidence, resamples, seed)


def _percentile_interval(data: np.ndarray, statistic: Callable[..., object], vectorized: bool, confidence: float,
                         resamples: int, seed: int) -> tuple[float, float]:
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # a constant statistic: the point is the CI
        result = stats.bootstrap((data,), statistic, n_resamples=resamples, confidence_level=confidence,
                                 method="percentile", vectorized=vectorized, rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        point = float(statistic(data))  # type: ignore[arg-type]
        return point, point
    return low, high


def mean_over_runs_and_examples(scores: Sequence[Sequence[float]], *, confidence: float = CONFIDENCE,
                                resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """The mean of a runs × examples score matrix and its interval, counting both sources of variance.

    Several seeded runs of a method scored on the same test examples vary two ways: between runs (the search found
    different prompts) and between examples (the test set is a sample). A t interval over the runs' means sees
    only the first, and gives a zero-width interval for a deterministic method; a bootstrap over examples only
    sees the second. The two-way ("pigeonhole") bootstrap, Owen 2007, resamples runs and examples independently
    and reads the percentiles of the grand mean. Returns (mean, low, high); seeded.
    """
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"expected a non-empty runs × examples matrix, got shape {matrix.shape}")
    runs, examples = matrix.shape
    mean = float(matrix.mean())
    if np.all(matrix == matrix.flat[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # in chunks: the count matrices stay small
        size = min(1000, resamples - start)
        run_counts = np.apply_along_axis(np.bincount, 1, rng.integers(runs, size=(size, runs)), minlength=runs)
        example_counts = np.apply_along_axis(np.bincount, 1, rng.integers(examples, size=(size, examples)),
                                             minlength=examples)
        means[start:start + size] = ((run_counts @ matrix) * example_counts).sum(axis=1) / (runs * examples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, min(float(low), mean), max(float(high), mean)


def resolvable_difference(n: int, *, discordance: float = TYPICAL_DISCORDANCE, alpha: float = 0.05,
                          power: float = 0.8) -> float:
    """The smallest gain in accuracy that n paired examples detect with `power` at level `alpha`.

    The normal approximation of the paired test (the differences are in {-1, 0, 1}, with variance about the
    share `discordance` of examples on which the prompts disagree), floored by what the exact test can reach at
    all: `MIN_DISCORDANT` examples, every one in the new prompt's favour. Above 1: n cannot resolve anything.
    """
    if n <= 0:
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(max(z * math.sqrt(discordance / n), MIN_DISCORDANT / n))


def compare_results(a: EvalResult, b: EvalResult, task: Task, **options: Any) -> PairedComparison:
    """`paired_comparison` of two evaluations of the same examples under the task's own metric."""
    if [r.input for r in a.examples] != [r.input for r in b.examples]:
        raise ValueError("a paired comparison needs both prompts scored on the same examples, in one order")
    metric = get_metric(task.metric)
    statistic = None
    if not metric.is_mean:
        targets = [r.target for r in a.examples]
        pa, pb = [r.prediction for r in a.examples], [r.prediction for r in b.examples]

        def statistic(idx: np.ndarray) -> tuple[float, float]:
            t = [targets[i] for i in idx]
            return (metric.aggregate([pa[i] for i in idx], t, task.labels),
                    metric.aggregate([pb[i] for i in idx], t, task.labels))

    return paired_comparison([r.score for r in a.examples], [r.score for r in b.examples], statistic=statistic,
                             **options)


#: a split that cannot resolve a gain this large gets a warning before the run
WORTH_RESOLVING = 0.10


def split_warnings(sizes: dict[str, int], *, worth: float = WORTH_RESOLVING) -> list[str]:
    """What the dev and test splits of these sizes cannot tell apart, one sentence each (none: nothing to say)."""
    out = []
    for split, role in (("dev", "selects the best prompt"), ("test", "measures the gain")):
        n = sizes.get(split, 0)
        smallest = resolvable_difference(n)
        if n and smallest > worth:
            out.append(f"the {split} split ({n} examples, it {role}) resolves differences of about "
                       f"{min(smallest, 1.0):.2f} and up (paired test, 80% power); a smaller gain will read as "
                       f"noise: give it more examples ({'--dev-size' if split == 'dev' else '--test-size'}) "
                       "if the task has them")
    return out
