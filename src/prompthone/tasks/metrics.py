"""Scoring functions for tasks: per-example correctness in [0, 1] and one aggregate score per split.

Every metric takes already-extracted answers (see `prompthone.tasks.answers`); a `None` prediction means
"no answer could be extracted" and always counts as wrong. Aggregates return 0.0 for empty inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prompthone.errors import ConfigError

PerExample = Callable[[str | None, str], float]
Aggregate = Callable[[Sequence[str | None], Sequence[str], Sequence[str] | None], float]

_WHITESPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
NUMERIC_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Metric:
    """A named metric: `per_example(prediction, target)` in [0, 1], `aggregate(predictions, targets, labels)`.

    `per_example` is what bandits and per-example reports use; `aggregate` is the split score. For the
    accuracy-style metrics the aggregate is the mean of `per_example`; for the F1 metrics it is not.
    """

    name: str
    per_example: PerExample
    aggregate: Aggregate
    description: str = ""
    #: whether `aggregate` is the mean of `per_example` (statistics then resample per-example scores directly)
    is_mean: bool = True

    def __call__(self, predictions: Sequence[str | None], targets: Sequence[str],
                 labels: Sequence[str] | None = None) -> float:
        """Score a whole split; same as `aggregate`."""
        return self.aggregate(predictions, targets, labels)


def normalize_text(text: str) -> str:
    """Normalize free text for exact match: strip, casefold, collapse whitespace, drop trailing periods."""
    text = _WHITESPACE.sub(" ", text.strip().casefold())
    return text.rstrip(".").rstrip()


def parse_number(text: str | None) -> float | None:
    """Parse a whole string as an integer or decimal ('-1,234.5', ' 7. ', '$3', '50%'); else None."""
    if text is None:
        return None
    cleaned = text.strip().rstrip(".").strip().removeprefix("$").removesuffix("%").strip()
    if not cleaned or _NUMBER.fullmatch(cleaned) is None:
        return None
    value = float(cleaned.replace(",", ""))
    return value if math.isfinite(value) else None


def exact_match(prediction: str | None, target: str) -> float:
    """1.0 when the normalized prediction equals the normalized target (see `normalize_text`)."""
    if prediction is None:
        return 0.0
    return float(normalize_text(prediction) == normalize_text(target))


def label_accuracy(prediction: str | None, target: str) -> float:
    """1.0 when the prediction is the target label, compared case-insensitively after stripping."""
    if prediction is None:
        return 0.0
    return float(prediction.strip().casefold() == target.strip().casefold())


def numeric_match(prediction: str | None, target: str) -> float:
    """1.0 when both parse as numbers that agree within 1e-6 (absolute or relative)."""
    predicted, expected = parse_number(prediction), parse_number(target)
    if predicted is None or expected is None:
        return 0.0
    return float(math.isclose(predicted, expected, rel_tol=NUMERIC_TOLERANCE, abs_tol=NUMERIC_TOLERANCE))


def _mean_of(per_example: PerExample) -> Aggregate:
    """An aggregate that averages `per_example` over the split (0.0 for an empty split)."""

    def aggregate(predictions: Sequence[str | None], targets: Sequence[str],
                  labels: Sequence[str] | None = None) -> float:
        _check_lengths(predictions, targets)
        if not targets:
            return 0.0
        return sum(per_example(p, t) for p, t in zip(predictions, targets, strict=True)) / len(targets)

    return aggregate


def _check_lengths(predictions: Sequence[str | None], targets: Sequence[str]) -> None:
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets")


def _label_set(targets: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    """The labels to score over: the given set, else the distinct targets in first-seen order."""
    return list(labels) if labels else list(dict.fromkeys(targets))


def _f1_counts(predictions: Sequence[str | None], targets: Sequence[str],
               label: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of `label`, compared case-insensitively."""
    key = label.strip().casefold()
    tp = fp = fn = 0
    for prediction, target in zip(predictions, targets, strict=True):
        predicted = prediction is not None and prediction.strip().casefold() == key
        actual = target.strip().casefold() == key
        tp += predicted and actual
        fp += predicted and not actual
        fn += actual and not predicted
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def macro_f1_score(predictions: Sequence[str | None], targets: Sequence[str],
                   labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of per-label F1 over the label set (the distinct targets when `labels` is None).

    A prediction outside the label set (or None) is a false negative for the true label and a false
    positive for no label. Labels that occur in neither targets nor predictions are left out, because
    their F1 is undefined (scikit-learn's `zero_division=0` would count them as 0 and punish a small
    dev split that happens to lack a label).
    """
    _check_lengths(predictions, targets)
    scores = []
    for label in _label_set(targets, labels):
        tp, fp, fn = _f1_counts(predictions, targets, label)
        if tp + fp + fn:
            scores.append(_f1(tp, fp, fn))
    return sum(scores) / len(scores) if scores else 0.0


def binary_f1_score(predictions: Sequence[str | None], targets: Sequence[str],
                    labels: Sequence[str] | None = None) -> float:
    """F1 of the positive class. The positive label is the FIRST label of the task's label set.

    Without a label set the first target seen is the positive label. When neither targets nor
    predictions contain the positive label the score is 0.0 (scikit-learn's `zero_division=0`).
    """
    _check_lengths(predictions, targets)
    label_set = _label_set(targets, labels)
    if not label_set:
        return 0.0
    return _f1(*_f1_counts(predictions, targets, label_set[0]))


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("exact_match", exact_match, _mean_of(exact_match),
               "normalized string equality (case, whitespace, trailing period ignored)"),
        Metric("label_accuracy", label_accuracy, _mean_of(label_accuracy),
               "fraction of predictions equal to the target label (case-insensitive)"),
        Metric("numeric_match", numeric_match, _mean_of(numeric_match),
               "numbers equal within 1e-6; commas, signs and decimals understood"),
        Metric("macro_f1", label_accuracy, macro_f1_score,
               "unweighted mean F1 over the label set; per example: correct label", is_mean=False),
        Metric("binary_f1", label_accuracy, binary_f1_score,
               "F1 of the first label of the task's label set; per example: correct label", is_mean=False),
    )
}


def metric_names() -> list[str]:
    """The names `get_metric` accepts."""
    return list(METRICS)


def get_metric(name: str) -> Metric:
    """Look up a metric by name; an unknown name raises ConfigError listing the valid ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}") from None
