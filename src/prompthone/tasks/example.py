"""The data a task is made of: examples with expected outputs, seeded splits and the task record."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prompthone.errors import ConfigError


@dataclass(frozen=True)
class Example:
    """One input with its expected output. `meta` carries loader-specific extras (source line, id, ...)."""

    input: str
    target: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """A stable id from the content (what a run records per-example scores under; see `example_key`)."""
        return example_key(self.input, self.target)


def example_key(input_text: str, target: str) -> str:
    """16 hex digits of SHA-1 over input and target: the same example gets the same key in every run and store,
    and an evaluation result (which carries input and target, not an index) maps back to its example.

    Copies (the same input and target twice in a file) share a key, on purpose: the run store keeps each copy
    in its own row (by split and position) and their scores, which depend only on the content, in one row per
    candidate, so copies never overwrite or corrupt each other's records. An `id` in `meta` plays no part."""
    return hashlib.sha1(f"{input_text}\x00{target}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """A task: splits, how answers are scored, and the closed label set if there is one.

    `metric` names a function in `prompthone.tasks.metrics` (exact_match, label_accuracy, macro_f1,
    binary_f1, numeric_match). `labels` is set for classification tasks; it enables label scoring by
    log-probabilities. `instruction` is the seed instruction the optimizers start from, and
    `output_format` the fixed answer-format line that optimizers never edit.
    """

    name: str
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    metric: str = "exact_match"
    labels: tuple[str, ...] | None = None
    instruction: str = ""
    output_format: str = ""
    description: str = ""
    #: textual feedback on one answer, `feedback(result, task) -> str`, for methods that reflect on evaluation
    #: traces (GEPA); None: `evaluation.feedback.default_feedback`. Runtime only: not stored with a run
    feedback: Callable[[Any, Task], str] | None = field(default=None, compare=False, repr=False)

    def split(self, name: str) -> tuple[Example, ...]:
        """Return the split called `name` ('train', 'dev' or 'test')."""
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, dev or test")
        split: tuple[Example, ...] = getattr(self, name)
        return split


def split_examples(examples: Sequence[Example], *, seed: int = 0,
                   fractions: tuple[float, float, float] = (0.4, 0.2, 0.4),
                   ) -> tuple[tuple[Example, ...], tuple[Example, ...], tuple[Example, ...]]:
    """Shuffle with `seed` and cut into (train, dev, test) by `fractions`; every split gets ≥1 example when possible.

    The same seed always gives the same splits, so runs and comparisons are reproducible.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    items = list(examples)
    random.Random(seed).shuffle(items)
    n = len(items)
    n_train = round(n * fractions[0])
    n_dev = round(n * fractions[1])
    if n >= 3:
        n_train = max(1, min(n_train, n - 2))
        n_dev = max(1, min(n_dev, n - n_train - 1))
    train = tuple(items[:n_train])
    dev = tuple(items[n_train:n_train + n_dev])
    test = tuple(items[n_train + n_dev:])
    return train, dev, test


def _split_count(size: float, n: int, name: str) -> int:
    """A split's size given as a count (>= 1) or as a fraction of `n` (0 < size < 1)."""
    if not size > 0 or math.isinf(size):
        raise ConfigError(f"{name} must be a count (1, 2, ...) or a fraction between 0 and 1, got {size}")
    if size < 1:
        return max(1, round(size * n))
    if size != int(size):
        raise ConfigError(f"{name} must be a whole number of examples or a fraction below 1, got {size}")
    return int(size)


def resize_splits(task: Task, *, seed: int = 0, dev_size: float | None = None,
                  test_size: float | None = None) -> Task:
    """The task with its examples split again: `dev_size` and `test_size` examples (counts, or fractions of
    all examples when below 1; a size not given keeps its split's share), train the rest (at least one).

    The split is seeded like `split_examples`: the same seed and sizes give the same splits.
    """
    items = [*task.train, *task.dev, *task.test]
    n = len(items)
    n_dev = len(task.dev) if dev_size is None else _split_count(dev_size, n, "dev_size")
    n_test = len(task.test) if test_size is None else _split_count(test_size, n, "test_size")
    if n_dev + n_test > n - 1:
        raise ConfigError(f"task {task.name!r} has {n} examples: dev {n_dev} + test {n_test} leave none for "
                          "train; ask for smaller splits")
    random.Random(seed).shuffle(items)
    return dataclasses.replace(task, train=tuple(items[:n - n_dev - n_test]),
                               dev=tuple(items[n - n_dev - n_test:n - n_test]), test=tuple(items[n - n_test:]))
