"""The candidate pool of the `auto` method: demo sets and the dev order its race reads.

Demo sets follow MIPROv2's kinds (Opsahl-Ong et al. 2024: zero-shot, labeled, bootstrapped) with one change that
small models need: every set is **label-balanced** (the labels take turns), because a set that shows one label more
often moves a small model's label prior, which is most of what such a model answers (issue 17's measurements). A
bootstrapped set holds training examples the seed prompt answers correctly (DSPy's `BootstrapFewShot`, one round),
still balanced, topped up with labeled examples when the seed gets too few of a label right.

The race reads dev in a stratified order (`stratified_order`): each label's examples shuffled, then interleaved in
proportion, so that every prefix the race scores on has about the dev split's label mix.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from itertools import zip_longest

from prompthone.optimizers.mipro_demos import DemoSet, SeedJudge
from prompthone.tasks.example import Example


def _by_label(indices: Sequence[int], examples: Sequence[Example], labels: Sequence[str] | None,
              ) -> list[list[int]]:
    """`indices` grouped by their example's target label, in label order (one group when there is no label set)."""
    if not labels:
        return [list(indices)]
    groups: dict[str, list[int]] = {label: [] for label in labels}
    for i in indices:
        groups.setdefault(examples[i].target, []).append(i)
    return [g for g in groups.values() if g]


def _take_turns(groups: Sequence[Sequence[int]], k: int) -> list[int]:
    """Up to `k` indices, one from each group in turn (a round robin over labels)."""
    picked = [i for row in zip_longest(*groups) for i in row if i is not None]
    return picked[:k]


def balanced_demos(train: Sequence[Example], labels: Sequence[str] | None, k: int, rng: random.Random,
                   ) -> tuple[int, ...]:
    """The indices of `k` training examples, labels taking turns, each label's examples in a seeded random order."""
    groups = _by_label(range(len(train)), train, labels)
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)  # which label comes first is drawn too: a fixed first label would be a bias of its own
    return tuple(_take_turns(groups, k))


def bootstrapped_demos(train: Sequence[Example], labels: Sequence[str] | None, k: int, judge: SeedJudge,
                       rng: random.Random, max_judged: int) -> tuple[tuple[int, ...], int]:
    """`k` label-balanced training examples, the ones the seed prompt answers correctly first; and how many of them
    were answered correctly. At most `max_judged` examples are judged (one task-model call each)."""
    order = list(range(len(train)))
    rng.shuffle(order)
    judged = order[:max_judged]
    verdicts = dict(zip(judged, judge.correct(judged), strict=True)) if judged else {}
    quota = math.ceil(k / max(1, len(labels or ()) or 1))  # no label may take more than its share of the set
    groups = [g[:quota] for g in _by_label([i for i in judged if verdicts[i]], train, labels)]
    kept = _take_turns(groups, k)
    if len(kept) < k:  # top up with labeled examples, the labels furthest below their share first
        taken = set(kept)
        rest = [g[:max(0, quota - sum(train[i].target == train[g[0]].target for i in kept))]
                for g in _by_label([i for i in order if i not in taken], train, labels)]
        rest.sort(key=len, reverse=True)
        kept += _take_turns(rest, k - len(kept))
    return tuple(kept), sum(1 for i in kept if verdicts.get(i))


def demo_sets(train: Sequence[Example], labels: Sequence[str] | None, sizes: Sequence[int], bootstrapped: int,
              judge: SeedJudge, rng: random.Random, max_judged: int) -> list[DemoSet]:
    """Zero-shot, one balanced labeled set per size, then `bootstrapped` balanced bootstrapped sets of the largest
    size; a set equal to one before it is left out."""
    sets = [DemoSet((), 0, "zero-shot")]
    seen: set[tuple[int, ...]] = {()}
    for k in sizes:
        picked = balanced_demos(train, labels, k, rng)
        if picked not in seen:
            seen.add(picked)
            sets.append(DemoSet(tuple(train[i] for i in picked), 0, "labeled"))
    for _ in range(bootstrapped if sizes else 0):
        picked, correct = bootstrapped_demos(train, labels, max(sizes), judge, rng, max_judged)
        if picked not in seen:
            seen.add(picked)
            sets.append(DemoSet(tuple(train[i] for i in picked), correct, "bootstrapped"))
    return sets


def stratified_order(examples: Sequence[Example], labels: Sequence[str] | None, rng: random.Random) -> list[int]:
    """A seeded order of `examples` whose every prefix has about the split's label mix (no labels: a shuffle).

    Each label's examples are shuffled; then, position by position, the label furthest behind its share of the
    prefix so far comes next (ties: the label order drawn at random once).
    """
    groups = _by_label(range(len(examples)), examples, labels)
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    n = len(examples)
    taken = [0] * len(groups)
    order: list[int] = []
    for pos in range(1, n + 1):
        behind = max(range(len(groups)), key=lambda g: (len(groups[g]) * pos / n - taken[g], -g)
                     if taken[g] < len(groups[g]) else (float("-inf"), -g))
        order.append(groups[behind][taken[behind]])
        taken[behind] += 1
    return order
