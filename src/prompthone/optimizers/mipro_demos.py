"""MIPROv2's candidate few-shot demo sets (Opsahl-Ong et al., 2024, §3 "bootstrapping demonstrations").

Mirrors DSPy's `create_n_fewshot_demo_sets`: set 0 is empty (zero-shot), set 1 holds labeled examples only
(`max_labeled_demos` random training pairs), set 2 is bootstrapped from the training split in its own order, and
every further set is bootstrapped from a shuffled copy with a random size in [1, `max_bootstrapped_demos`].
Bootstrapping (DSPy's `BootstrapFewShot`, one round) walks the examples in order and keeps those the task model
answers correctly with the seed prompt, until it has enough; the set is then topped up with plain labeled
examples, drawn from the ones not kept, to `max_labeled_demos` demos in all. Bootstrapped demos come first.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.evaluation.evaluator import Evaluator
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example

#: A per-example metric score counted as "answered correctly" (DSPy keeps a trace when the metric is truthy).
FULL_MARKS = 1.0 - 1e-9


@dataclass(frozen=True)
class DemoSet:
    """One candidate set of demos: its first `bootstrapped` demos were answered correctly by the seed prompt."""

    demos: tuple[Example, ...]
    bootstrapped: int
    kind: str  # "zero-shot" | "labeled" | "bootstrapped"

    @property
    def bootstrapped_demos(self) -> tuple[Example, ...]:
        return self.demos[:self.bootstrapped]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bootstrapped": self.bootstrapped,
                "demos": [{"input": d.input, "target": d.target} for d in self.demos]}


class SeedJudge:
    """Whether the task model answers each training example correctly with the seed prompt.

    Each example is evaluated at most once (through the metered evaluator, so the calls count against the
    budget); later sets reuse the verdict, since the seed prompt's answer to an example never changes.
    """

    def __init__(self, evaluator: Evaluator, prompt: Prompt, train: Sequence[Example]) -> None:
        self.evaluator = evaluator
        self.prompt = prompt
        self.train = train
        self.verdicts: dict[int, bool] = {}

    def correct(self, indices: Sequence[int]) -> list[bool]:
        """Verdicts for `indices`, evaluating the ones not seen yet in one batch."""
        todo = [i for i in dict.fromkeys(indices) if i not in self.verdicts]
        if todo:
            result = self.evaluator.evaluate(self.prompt, [self.train[i] for i in todo])
            for i, r in zip(todo, result.examples, strict=True):
                self.verdicts[i] = r.score >= FULL_MARKS
        return [self.verdicts[i] for i in indices]


def bootstrap(order: Sequence[int], judge: SeedJudge, wanted: int) -> list[int]:
    """The first `wanted` indices of `order` that the seed prompt answers correctly.

    Evaluates in batches of what is still missing, so it never evaluates an example past the one that
    completes the set (the same examples DSPy's one-round loop would run).
    """
    kept: list[int] = []
    pos = 0
    while len(kept) < wanted and pos < len(order):
        batch = list(order[pos:pos + wanted - len(kept)])
        pos += len(batch)
        kept += [i for i, ok in zip(batch, judge.correct(batch), strict=True) if ok]
    return kept


def make_demo_sets(train: Sequence[Example], judge: SeedJudge, rng: random.Random, *, num_sets: int,
                   max_bootstrapped: int, max_labeled: int) -> list[DemoSet]:
    """`num_sets` candidate demo sets, in DSPy's order: zero-shot, labeled-only, unshuffled, then shuffled."""
    sets = [DemoSet((), 0, "zero-shot")]
    while len(sets) < num_sets:
        slot = len(sets)
        order = list(range(len(train)))
        if slot == 1 and max_labeled > 0:
            picked = rng.sample(order, min(max_labeled, len(order)))
            sets.append(DemoSet(tuple(train[i] for i in picked), 0, "labeled"))
            continue
        size = max_bootstrapped
        if slot != 2:  # set 2 keeps the training order; the others shuffle and draw a size
            rng.shuffle(order)
            size = rng.randint(min(1, max_bootstrapped), max_bootstrapped)
        kept = bootstrap(order, judge, size)
        taken = set(kept)
        rest = [i for i in order if i not in taken]
        top_up = rng.sample(rest, max(0, min(max_labeled - len(kept), len(rest))))
        sets.append(DemoSet(tuple(train[i] for i in kept + top_up), len(kept), "bootstrapped"))
    return sets


def gather_bootstrapped(sets: Sequence[DemoSet], start: int, limit: int) -> list[Example]:
    """Up to `limit` bootstrapped demos from set `start`, then the sets after it, wrapping round (DSPy's proposer)."""
    out: list[Example] = []
    for demo_set in [*sets[start:], *sets[:start]]:
        for demo in demo_set.bootstrapped_demos:
            if len(out) >= limit:
                return out
            out.append(demo)
    return out
