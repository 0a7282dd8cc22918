"""Generated tasks: deterministic, well-formed, answers correct."""

from __future__ import annotations

from collections import Counter

import pytest

from prompthone.tasks.generated import (
    GENERATED,
    make_arithmetic,
    make_boolean_expressions,
    make_sentiment_templates,
    make_word_sorting,
)
from prompthone.tasks.metrics import METRICS


@pytest.mark.parametrize("name", list(GENERATED))
def test_deterministic_sized_and_distinct(name: str) -> None:
    factory = GENERATED[name].factory
    first, again, other = factory(50, 3), factory(50, 3), factory(50, 4)
    assert [(e.input, e.target) for e in first] == [(e.input, e.target) for e in again]
    assert [(e.input, e.target) for e in first] != [(e.input, e.target) for e in other]
    assert len(first) == 50
    assert len({e.input for e in first}) == 50


@pytest.mark.parametrize("name", list(GENERATED))
def test_spec_is_consistent(name: str) -> None:
    spec = GENERATED[name]
    assert spec.metric in METRICS
    assert spec.instruction and spec.output_format and spec.description
    if spec.labels:
        assert {e.target for e in spec.factory(40, 0)} <= set(spec.labels)


def test_arithmetic_answers() -> None:
    examples = make_arithmetic(200)
    for example in examples:
        assert example.target.isdigit() and int(example.target) < 50
    one = next(e for e in examples if e.meta["kind"] == "two_step")
    words = one.input.replace(",", "").split()
    has, buys, gives = (int(w) for w in words if w.isdigit())
    assert int(one.target) == has + buys - gives


def test_boolean_expressions_balanced_and_correct() -> None:
    examples = make_boolean_expressions(120)
    assert Counter(e.target for e in examples) == {"True": 60, "False": 60}
    for example in examples:
        python = example.input.replace("( ", "(").replace(" )", ")")
        assert str(eval(python)) == example.target  # the expression only holds True/False/not/and/or/()


def test_word_sorting() -> None:
    for example in make_word_sorting(30):
        words = example.input.split()
        assert 3 <= len(words) <= 5
        assert example.target == " ".join(sorted(words))


def test_sentiment_templates_balanced() -> None:
    examples = make_sentiment_templates(120)
    assert Counter(e.target for e in examples) == {"positive": 60, "negative": 60}
    assert not any(" a excellent " in e.input or " a awful " in e.input for e in examples)
