"""GEPA's pure parts: epoch-shuffled minibatches and the system-aware merge of two lineages (Agrawal et al., 2025).

State lives in plain dicts and lists (JSON-serializable) so that a run store can save and resume it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

Components = Mapping[str, str]


def new_sampler_state(n_train: int) -> dict[str, Any]:
    """A fresh epoch-shuffled sampler over `n_train` training examples."""
    return {"order": [], "epoch": -1, "freqs": [0] * n_train, "drawn": 0}


def next_minibatch(sampler: dict[str, Any], size: int, rng: random.Random) -> list[int]:
    """The next `size` training indices of GEPA's `EpochShuffledBatchSampler`; updates `sampler` in place.

    Each epoch shuffles all indices and pads the order to a multiple of `size` with the least-drawn indices
    (ties: the lowest index), so minibatches cycle through the whole training set before repeating.
    """
    freqs: list[int] = sampler["freqs"]
    n_train = len(freqs)
    length = math.ceil(n_train / size) * size
    position = sampler["drawn"] * size
    epoch = position // length
    if epoch > sampler["epoch"]:
        order = list(range(n_train))
        rng.shuffle(order)
        for i in order:
            freqs[i] += 1
        while len(order) < length:
            least = min(range(n_train), key=lambda i: (freqs[i], i))
            order.append(least)
            freqs[least] += 1
        sampler["order"], sampler["epoch"] = order, epoch
    sampler["drawn"] += 1
    start = position % length
    return list(sampler["order"][start:start + size])


def ancestors(node: int, parents: Mapping[int, Sequence[int]]) -> set[int]:
    """Every candidate `node` descends from (merges have two parents)."""
    found: set[int] = set()
    stack = list(parents.get(node, ()))
    while stack:
        cand = stack.pop()
        if cand not in found:
            found.add(cand)
            stack.extend(parents.get(cand, ()))
    return found


def has_desirable_component(ancestor: Components, first: Components, second: Components) -> bool:
    """True when some component is unchanged from the ancestor in one descendant and changed in the other."""
    return any((ancestor[name] in (first[name], second[name])) and first[name] != second[name] for name in ancestor)


def find_merge_triplet(rng: random.Random, candidates: Sequence[int], parents: Mapping[int, Sequence[int]],
                       aggregate: Mapping[int, float], components: Mapping[int, Components],
                       tried: set[tuple[int, int, int]], attempts: int = 10) -> tuple[int, int, int] | None:
    """Two candidates of different lineages and a common ancestor to merge them through, or None.

    GEPA's `find_common_ancestor_pair`: up to `attempts` random pairs; neither may descend from the other; the
    ancestor must score no better than either descendant, must not have been tried with this pair, and must
    leave a component worth taking (`has_desirable_component`). Among valid ancestors one is drawn with
    probability proportional to its aggregate score (uniformly when all are 0).
    """
    pool = sorted(set(candidates))
    if len(pool) < 2:
        return None
    for _ in range(attempts):
        i, j = sorted(rng.sample(pool, 2))
        up_i, up_j = ancestors(i, parents), ancestors(j, parents)
        if i in up_j or j in up_i:
            continue
        common = sorted(a for a in up_i & up_j
                        if (i, j, a) not in tried and aggregate[a] <= min(aggregate[i], aggregate[j])
                        and has_desirable_component(components[a], components[i], components[j]))
        if common:
            weights = [aggregate[a] for a in common]
            pick = rng.choices(common, weights=weights)[0] if sum(weights) > 0 else rng.choice(common)
            return i, j, pick
    return None


def merge_components(ancestor: Components, first: Components, second: Components, first_score: float,
                     second_score: float, rng: random.Random) -> tuple[dict[str, str], list[str]]:
    """GEPA's system-aware merge: per component, the descendant's version that changed from the ancestor.

    When both descendants changed a component, the one with the higher aggregate score gives it (a tie is
    broken at random); when both agree, their shared version is kept. Returns the merged components and, per
    component, which side gave it ('first' or 'second').
    """
    merged: dict[str, str] = {}
    sources: list[str] = []
    for name in sorted(ancestor):
        base, a, b = ancestor[name], first[name], second[name]
        if a == b:
            side = "first"
        elif base == a:
            side = "second"
        elif base == b:
            side = "first"
        elif first_score != second_score:
            side = "first" if first_score > second_score else "second"
        else:
            side = rng.choice(["first", "second"])
        merged[name] = a if side == "first" else b
        sources.append(side)
    return merged, sources


def merge_subsample(first: Sequence[float], second: Sequence[float], size: int, rng: random.Random) -> list[int]:
    """Pareto-set positions to check a merge on: balanced over where the first wins, the second wins, they tie.

    GEPA's `select_eval_subsample_for_merged_program`: up to ⌈size/3⌉ from each bucket, then the rest at random
    (with replacement when the set is smaller than `size`).
    """
    positions = range(len(first))
    buckets = ([k for k in positions if first[k] > second[k]], [k for k in positions if second[k] > first[k]],
               [k for k in positions if first[k] == second[k]])
    each = max(1, math.ceil(size / 3))
    chosen: list[int] = []
    for bucket in buckets:
        take = min(len(bucket), each, size - len(chosen))
        if take > 0:
            chosen += rng.sample(bucket, take)
    missing = size - len(chosen)
    if missing > 0 and len(first):
        unused = [k for k in positions if k not in chosen]
        chosen += rng.sample(unused, missing) if len(unused) >= missing else rng.choices(list(positions), k=missing)
    return chosen[:size]
