"""Best-arm identification for picking a beam of prompts (ProTeGi §2.2; Audibert & Bubeck 2010; Karnin 2013).

Every selector has the same shape: `selector(n_arms, k, pull, budget=..., rng=..., on_round=...) ->
SelectionResult`, where `pull(arm, n)` evaluates arm `arm` on `n` examples and returns one reward in [0, 1] per
example, and `on_round()` (optional) is called before each round's pulls: the ProTeGi reference draws one sample
of examples per round and scores every prompt of the round on it, which a caller does by drawing its sample
there. The selectors hold no state beyond their arguments, so they are testable with exact numbers on synthetic
arms, and the index functions (`ucb_index`, `ucb_index_rounds`, `ucbe_index`) are pure.

Budget is counted in pulls (examples evaluated). Successive rejects, successive halving and brute force
spend exactly `budget` pulls (when `budget ≥ n_arms`); UCB and UCB-E spend `rounds × arms_per_round ×
samples_per_pull`, capped at `budget` when one is given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prompthone.errors import ConfigError

Pull = Callable[[int, int], Sequence[float]]
OnRound = Callable[[], None] | None


@dataclass
class ArmStats:
    """Running reward totals per arm."""

    sums: list[float]
    counts: list[int]

    @classmethod
    def empty(cls, n_arms: int) -> ArmStats:
        return cls([0.0] * n_arms, [0] * n_arms)

    def mean(self, arm: int) -> float:
        return self.sums[arm] / self.counts[arm] if self.counts[arm] else 0.0

    def add(self, arm: int, rewards: Sequence[float]) -> None:
        self.sums[arm] += float(sum(rewards))
        self.counts[arm] += len(rewards)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def ranked(self, arms: Iterable[int]) -> list[int]:
        """Arms best first by empirical mean; ties go to the lower index (older candidate)."""
        return sorted(arms, key=lambda a: (-self.mean(a), a))


@dataclass
class SelectionResult:
    """The chosen arms (best first), every arm's empirical mean and pull count, and the pulls spent."""

    chosen: list[int]
    means: list[float]
    counts: list[int]
    pulls: int
    history: list[list[int]] = field(default_factory=list)


def _pull(stats: ArmStats, pull: Pull, arm: int, n: int) -> None:
    if n > 0:
        rewards = list(pull(arm, n))
        if len(rewards) != n:
            raise ValueError(f"pull({arm}, {n}) returned {len(rewards)} rewards")
        stats.add(arm, rewards)


def _result(stats: ArmStats, chosen: list[int], history: list[list[int]]) -> SelectionResult:
    n = len(stats.counts)
    return SelectionResult(chosen, [stats.mean(a) for a in range(n)], list(stats.counts), stats.total, history)


def _check(n_arms: int, k: int) -> None:
    if n_arms < 1 or k < 1:
        raise ConfigError(f"need ≥ 1 arm and k ≥ 1, got {n_arms} arms and k={k}")


def _spread(total: int, arms: Sequence[int]) -> dict[int, int]:
    """Split `total` pulls over `arms` as evenly as possible (the first arms get the remainder)."""
    base, extra = divmod(total, len(arms))
    return {a: base + (1 if i < extra else 0) for i, a in enumerate(arms)}


# -- index policies ------------------------------------------------------------------------------------------
#: what the reference adds to every count, so that an unpulled arm's bonus is finite (large)
COUNT_EPSILON = 1e-3
#: UCB's time index: the round number (the paper and its reference code) or the pulls so far (prompthone's earlier)
UCB_TIMES = ("rounds", "pulls")


def ucb_index_rounds(mean: float, count: int, t: int, c: float) -> float:
    """UCB1 as ProTeGi's reference computes it: mean + c·sqrt(log t / (n + 0.001)), `t` the round number (0-based)
    and `n` the examples pulled. At t = 1 the bonus is 0 (log 1): that round is greedy, as in the reference."""
    return mean + c * math.sqrt(math.log(max(t, 1)) / (count + COUNT_EPSILON))


def ucb_index(mean: float, count: int, t: int, c: float) -> float:
    """UCB1 with `t` the total pulls so far (at least 1): mean + c·sqrt(log t / n); unpulled arms come first.
    prompthone's earlier form (`time="pulls"`): its bonus at c = 1 is ~1.9× the reference's after 8 × 8 × 32."""
    if count == 0:
        return math.inf
    return mean + c * math.sqrt(math.log(max(t, 1)) / count)


def ucbe_index(mean: float, count: int, c: float) -> float:
    """UCB-E as ProTeGi writes it: mean + c·sqrt(c / n) (Audibert et al.'s UCB-E with exploration a = c³)."""
    if count == 0:
        return math.inf
    return mean + c * math.sqrt(c / count)


def _index_selector(index: Callable[[ArmStats, int, int], float], n_arms: int, k: int, pull: Pull, *,
                    rounds: int, arms_per_round: int, samples_per_pull: int, budget: int | None,
                    rng: random.Random, time: str = "pulls", on_round: OnRound = None) -> SelectionResult:
    """Each round, the `arms_per_round` arms with the highest index, each pulled `samples_per_pull` times.

    `time="rounds"` (the reference): t is the round number, and a round with no pull yet chooses its arms at
    random. `time="pulls"`: t is the pulls so far (≥ 1), unpulled arms first, ties broken at random.
    """
    if time not in UCB_TIMES:
        raise ConfigError(f"time must be one of {', '.join(UCB_TIMES)}, got {time!r}")
    stats = ArmStats.empty(n_arms)
    history: list[list[int]] = []
    per_round = min(arms_per_round, n_arms)
    for r in range(rounds):
        if time == "rounds" and stats.total == 0:
            chosen = rng.sample(range(n_arms), per_round)
        else:
            t = r if time == "rounds" else max(1, stats.total)
            order = list(range(n_arms))
            rng.shuffle(order)  # random tie-break among equal indices (e.g. all unpulled arms)
            chosen = sorted(order, key=lambda a: -index(stats, a, t))[:per_round]
        if on_round is not None:
            on_round()
        pulled = []
        for arm in chosen:
            n = samples_per_pull if budget is None else min(samples_per_pull, budget - stats.total)
            if n <= 0:
                break
            _pull(stats, pull, arm, n)
            pulled.append(arm)
        history.append(pulled)
        if budget is not None and stats.total >= budget:
            break
    return _result(stats, stats.ranked(range(n_arms))[:k], history)


def ucb(n_arms: int, k: int, pull: Pull, *, rounds: int = 8, arms_per_round: int = 8, samples_per_pull: int = 32,
        c: float = 1.0, budget: int | None = None, rng: random.Random | None = None, time: str = "rounds",
        on_round: OnRound = None) -> SelectionResult:
    """UCB1 over prompts (ProTeGi's default): each round pull the `arms_per_round` arms with the highest index.

    `time="rounds"` is the paper's and its reference code's index (`ucb_index_rounds`); `time="pulls"` keeps
    prompthone's earlier one (`ucb_index`), which explores more."""
    _check(n_arms, k)
    form = ucb_index_rounds if time == "rounds" else ucb_index
    return _index_selector(lambda s, a, t: form(s.mean(a), s.counts[a], t, c), n_arms, k, pull,
                           rounds=rounds, arms_per_round=arms_per_round, samples_per_pull=samples_per_pull,
                           budget=budget, rng=rng or random.Random(0), time=time, on_round=on_round)


def ucb_e(n_arms: int, k: int, pull: Pull, *, rounds: int = 8, arms_per_round: int = 8, samples_per_pull: int = 32,
          c: float = 1.0, budget: int | None = None, rng: random.Random | None = None, time: str = "rounds",
          on_round: OnRound = None) -> SelectionResult:
    """UCB-E (exploration constant instead of log t): better suited to pure best-arm identification. `time` only
    decides the first round: at random (`rounds`, the reference) or unpulled arms in random order (`pulls`)."""
    _check(n_arms, k)
    return _index_selector(lambda s, a, t: ucbe_index(s.mean(a), s.counts[a], c), n_arms, k, pull,
                           rounds=rounds, arms_per_round=arms_per_round, samples_per_pull=samples_per_pull,
                           budget=budget, rng=rng or random.Random(0), time=time, on_round=on_round)


# -- elimination ---------------------------------------------------------------------------------------------
def successive_rejects(n_arms: int, k: int, pull: Pull, *, budget: int, rng: random.Random | None = None,
                       on_round: OnRound = None) -> SelectionResult:
    """Successive rejects (Audibert & Bubeck 2010), stopping when `k` arms remain.

    Phase j (j = 1 .. K−k) pulls each surviving arm up to n_j times in total and rejects the worst, with the
    classic schedule n_j = ⌈(budget − K) / (L · (K + 1 − j))⌉, L = 1 + Σ_{i=k+2..K} 1/i (for k = 1 this is
    the paper's loḡ(K) = ½ + Σ_{i=2..K} 1/i). Rounding leftovers go to the last phase, so exactly `budget`
    pulls are spent.
    """
    _check(n_arms, k)
    active = list(range(n_arms))
    stats = ArmStats.empty(n_arms)
    if n_arms <= k:
        _new_round(on_round)
        _spread_pulls(stats, pull, active, budget)
        return _result(stats, stats.ranked(active), [active])
    if budget < n_arms:
        raise ConfigError(f"successive rejects needs a budget ≥ the number of arms ({n_arms}), got {budget}")
    phases = n_arms - k
    scale = 1.0 + sum(1.0 / i for i in range(k + 2, n_arms + 1))
    targets = [math.ceil((budget - n_arms) / (scale * (n_arms + 1 - j))) for j in range(1, phases + 1)]
    history: list[list[int]] = []
    for j, target in enumerate(targets, start=1):
        _new_round(on_round)
        if j == phases:  # the last phase takes whatever the rounding left
            _spread_pulls(stats, pull, active, budget - stats.total)
        else:
            for arm in active:
                _pull(stats, pull, arm, min(target - stats.counts[arm], budget - stats.total))
        history.append(list(active))
        worst = stats.ranked(active)[-1]
        active.remove(worst)
    return _result(stats, stats.ranked(active), history)


def _new_round(on_round: OnRound) -> None:
    if on_round is not None:
        on_round()


def _spread_pulls(stats: ArmStats, pull: Pull, arms: Sequence[int], total: int) -> None:
    for arm, n in _spread(max(0, total), arms).items():
        _pull(stats, pull, arm, n)


def successive_halving(n_arms: int, k: int, pull: Pull, *, budget: int, rng: random.Random | None = None,
                       on_round: OnRound = None) -> SelectionResult:
    """Successive halving (Karnin et al. 2013): ⌈log2(K/k)⌉ rounds, each keeping the better half (never < k).

    Each round gets an equal share of the budget, spread evenly over its surviving arms; the last round
    also takes the rounding leftovers, so exactly `budget` pulls are spent.
    """
    _check(n_arms, k)
    active = list(range(n_arms))
    stats = ArmStats.empty(n_arms)
    rounds = max(1, math.ceil(math.log2(n_arms / k))) if n_arms > k else 1
    history: list[list[int]] = []
    for r in range(rounds):
        share = budget - stats.total if r == rounds - 1 else budget // rounds
        _new_round(on_round)
        _spread_pulls(stats, pull, active, share)
        history.append(list(active))
        keep = max(k, math.ceil(len(active) / 2))
        active = stats.ranked(active)[:keep]
    return _result(stats, stats.ranked(active)[:k], history)


def brute_force(n_arms: int, k: int, pull: Pull, *, budget: int, rng: random.Random | None = None,
                on_round: OnRound = None) -> SelectionResult:
    """Every arm on budget / #arms examples; the best k by mean."""
    _check(n_arms, k)
    stats = ArmStats.empty(n_arms)
    arms = list(range(n_arms))
    _new_round(on_round)
    _spread_pulls(stats, pull, arms, budget)
    return _result(stats, stats.ranked(arms)[:k], [arms])


SELECTORS: dict[str, Callable[..., SelectionResult]] = {
    "ucb": ucb, "ucb-e": ucb_e, "successive-rejects": successive_rejects, "successive-halving": successive_halving,
    "brute-force": brute_force,
}


def get_selector(name: str) -> Callable[..., SelectionResult]:
    """The selector registered as `name` (ucb, ucb-e, successive-rejects, successive-halving, brute-force)."""
    try:
        return SELECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown selector {name!r}; available: {', '.join(SELECTORS)}") from None
