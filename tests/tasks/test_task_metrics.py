"""Metrics with hand-computed numbers."""

from __future__ import annotations

import pytest

from prompthone.errors import ConfigError
from prompthone.tasks.metrics import get_metric, metric_names, normalize_text, parse_number


def test_names_and_unknown_metric() -> None:
    assert metric_names() == ["exact_match", "label_accuracy", "numeric_match", "macro_f1", "binary_f1"]
    with pytest.raises(ConfigError, match="unknown metric 'f2'; choose one of: exact_match, label_accuracy"):
        get_metric("f2")


def test_normalize_text() -> None:
    assert normalize_text("  Apple   Banana\n cherry.. ") == "apple banana cherry"


@pytest.mark.parametrize(("prediction", "target", "expected"), [
    ("Paris.", "paris", 1.0),
    (" new   york ", "New York", 1.0),
    ("Paris, France", "Paris", 0.0),
    (None, "Paris", 0.0),
])
def test_exact_match(prediction: str | None, target: str, expected: float) -> None:
    assert get_metric("exact_match").per_example(prediction, target) == expected


def test_label_accuracy_aggregate() -> None:
    metric = get_metric("label_accuracy")
    assert metric.per_example("POSITIVE ", "positive") == 1.0
    assert metric.aggregate(["positive", "negative", None, "positive"],
                            ["positive", "positive", "negative", "positive"], None) == 0.5
    assert metric.aggregate([], [], None) == 0.0


@pytest.mark.parametrize(("prediction", "target", "expected"), [
    ("1,000", "1000", 1.0),
    ("-3.50", "-3.5", 1.0),
    ("3.0", "3", 1.0),
    ("7.", "7", 1.0),
    ("$12", "12", 1.0),
    ("3.0000001", "3", 1.0),
    ("3.001", "3", 0.0),
    ("three", "3", 0.0),
    (None, "3", 0.0),
    ("1,2,3", "123", 0.0),
])
def test_numeric_match(prediction: str | None, target: str, expected: float) -> None:
    assert get_metric("numeric_match").per_example(prediction, target) == expected


def test_parse_number() -> None:
    assert parse_number("-1,234.5") == -1234.5
    assert parse_number(".5") == 0.5
    assert parse_number("1e5") is None
    assert parse_number("") is None


def test_macro_f1_hand_computed() -> None:
    # labels a, b, c; targets a a a b b c; predictions a a b b c None
    #   a: tp=2 fp=0 fn=1 -> f1 = 4/5 = 0.8
    #   b: tp=1 fp=1 fn=1 -> f1 = 2/4 = 0.5
    #   c: tp=0 fp=1 fn=1 -> f1 = 0
    # macro = 1.3 / 3
    metric = get_metric("macro_f1")
    targets = ["a", "a", "a", "b", "b", "c"]
    predictions: list[str | None] = ["a", "a", "b", "b", "c", None]
    assert metric.aggregate(predictions, targets, ["a", "b", "c"]) == pytest.approx(1.3 / 3)
    assert metric(predictions, targets) == pytest.approx(1.3 / 3)  # label set inferred from targets
    assert metric.per_example("B", "b") == 1.0


def test_macro_f1_skips_labels_absent_everywhere() -> None:
    metric = get_metric("macro_f1")
    # label "c" never appears: it is left out instead of counting as 0
    assert metric.aggregate(["a", "b"], ["a", "b"], ["a", "b", "c"]) == 1.0
    assert metric.aggregate([None, None], ["a", "a"], ["a", "b"]) == 0.0


def test_binary_f1_positive_is_first_label() -> None:
    metric = get_metric("binary_f1")
    targets = ["pos", "pos", "neg", "neg", "pos"]
    predictions: list[str | None] = ["pos", "neg", "pos", "neg", "pos"]
    # positive = "pos": tp=2 fp=1 fn=1 -> 4/6
    assert metric.aggregate(predictions, targets, ["pos", "neg"]) == pytest.approx(2 / 3)
    # positive = "neg": tp=1 fp=1 fn=1 -> 2/4
    assert metric.aggregate(predictions, targets, ["neg", "pos"]) == pytest.approx(0.5)
    assert metric.aggregate(["neg"], ["neg"], ["pos", "neg"]) == 0.0


def test_length_mismatch_is_a_bug() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        get_metric("exact_match").aggregate(["a", "b"], ["a"], None)
