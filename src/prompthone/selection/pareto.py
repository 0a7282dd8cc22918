"""Instance-wise Pareto fronts over candidates scored per example, and GEPA's parent sampling from them.

GEPA (Agrawal et al., 2025, §3.2 "Pareto-based candidate selection", Algorithm 2) keeps, for every validation
example, the set of candidates that reach the best score on it. Candidates whose every "win" is shared with
another surviving candidate are dominated and removed; a parent is then drawn with probability proportional to
the number of examples on which it is (co-)best. Exploiting each example's specialist instead of the single best
candidate keeps the search from collapsing onto one lineage.

Pure functions of (per-example scores, aggregate scores, rng): testable with exact numbers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from prompthone.errors import ConfigError

#: candidate id → its score on each example of a fixed validation (Pareto) set, in the same example order
PerExample = Mapping[int, Sequence[float]]


def instance_fronts(scores: PerExample) -> list[set[int]]:
    """For each example, the candidates that reach the best score on it (all of them when they tie)."""
    if not scores:
        return []
    lengths = {len(s) for s in scores.values()}
    if len(lengths) != 1:
        raise ConfigError(f"every candidate needs a score on each Pareto example; got lengths {sorted(lengths)}")
    fronts = []
    for k in range(lengths.pop()):
        best = max(s[k] for s in scores.values())
        fronts.append({cid for cid, s in scores.items() if s[k] == best})
    return fronts


def _covered(cand: int, others: set[int], fronts: Sequence[set[int]]) -> bool:
    """True when every front holding `cand` also holds one of `others` (cand adds no example of its own)."""
    return all(others & front for front in fronts if cand in front)


def remove_dominated(fronts: Sequence[set[int]], aggregate: Mapping[int, float]) -> list[set[int]]:
    """The fronts without dominated candidates (GEPA's `remove_dominated_programs`).

    Candidates are examined from the lowest aggregate score up and removed one at a time while one is
    dominated by the survivors, so every non-empty front keeps at least one candidate. Among equal aggregates
    the newer (higher id) is examined first, so of two candidates with identical per-example scores the older
    survives.
    """
    members = sorted({c for front in fronts for c in front}, key=lambda c: (aggregate[c], -c))
    removed: set[int] = set()
    changed = True
    while changed:
        changed = False
        for cand in members:
            if cand in removed:
                continue
            survivors = set(members) - removed - {cand}
            if _covered(cand, survivors, fronts):
                removed.add(cand)
                changed = True
                break
    return [front - removed for front in fronts]


def front_counts(fronts: Sequence[set[int]]) -> dict[int, int]:
    """How many examples each candidate is (co-)best on, by candidate id (ascending)."""
    counts: dict[int, int] = {}
    for front in fronts:
        for cand in front:
            counts[cand] = counts.get(cand, 0) + 1
    return dict(sorted(counts.items()))


def nondominated(scores: PerExample, aggregate: Mapping[int, float]) -> list[int]:
    """The candidates left on some front once dominated ones are removed, by id (GEPA's merge candidates)."""
    return sorted(front_counts(remove_dominated(instance_fronts(scores), aggregate)))


def select_from_pareto_front(scores: PerExample, aggregate: Mapping[int, float], rng: random.Random) -> int:
    """Sample a parent with probability proportional to the examples it is (co-)best on, dominated ones excluded.

    With no examples to compare on, the best aggregate wins (ties: the lowest id).
    """
    counts = front_counts(remove_dominated(instance_fronts(scores), aggregate))
    if not counts:
        if not aggregate:
            raise ConfigError("no scored candidates to select a parent from")
        return min(aggregate, key=lambda c: (-aggregate[c], c))
    draws = [cand for cand, n in counts.items() for _ in range(n)]
    return rng.choice(draws)
