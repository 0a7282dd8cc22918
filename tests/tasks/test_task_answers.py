"""Answer extraction from the kind of text a small model writes."""

from __future__ import annotations

import pytest

from prompthone.tasks.answers import extract_answer, extract_label, extract_number, extract_text
from prompthone.tasks.example import Example, Task

SENTIMENT = ("positive", "negative")


@pytest.mark.parametrize(("text", "expected"), [
    ("positive", "positive"),
    ("Positive.", "positive"),
    ('"negative"', "negative"),
    ("Answer: Negative", "negative"),
    ("The answer is positive!", "positive"),
    ("I think this review is negative because the food was cold.", "negative"),
    ("The sentiment is negative, not positive.", "negative"),  # earliest occurrence wins
    ("positively great", None),  # whole words only
    ("neutral", None),
    ("", None),
    (None, None),
])
def test_extract_label_words(text: str | None, expected: str | None) -> None:
    assert extract_label(text, SENTIMENT) == expected


def test_extract_label_prefers_longer_label_at_same_position() -> None:
    assert extract_label("not entailment, clearly", ["entailment", "not entailment"]) == "not entailment"


@pytest.mark.parametrize(("text", "expected"), [
    ("(B)", "(B)"),
    ("B", "(B)"),
    ("Answer: (c)", "(C)"),
    ("The answer is (A) because it fits.", "(A)"),
    ("A good choice here is B", "(B)"),  # 'A good' is the article
    ("Answer: B because", "(B)"),
    ("I think the answer is D", None),  # no option D
])
def test_extract_label_options(text: str, expected: str | None) -> None:
    assert extract_label(text, ["(A)", "(B)", "(C)"]) == expected


def test_extract_label_bare_letter_labels() -> None:
    assert extract_label("(B) is right", ["A", "B"]) == "B"
    assert extract_label("True.", ["True", "False"]) == "True"


@pytest.mark.parametrize(("text", "expected"), [
    ("He has 1,000 apples", "1000"),
    ("3.0", "3"),
    ("The total is 2.50 dollars.", "2.5"),
    ("First 3, then 4, so the answer is 7.", "7"),
    ("It drops to -5 degrees", "-5"),
    ("pages 2-3", "3"),
    ("The answer is five.", "5"),
    ("no number here", None),
    (None, None),
])
def test_extract_number(text: str | None, expected: str | None) -> None:
    assert extract_number(text) == expected


def test_extract_text() -> None:
    assert extract_text('\n\n  Answer: "apple banana cherry"\nbecause...') == "apple banana cherry"
    assert extract_text("The answer is: Paris.") == "Paris."
    assert extract_text("Results vary") == "Results vary"
    assert extract_text("   \n") == ""
    assert extract_text(None) == ""


def make_task(metric: str, labels: tuple[str, ...] | None = None) -> Task:
    example = (Example("x", "y"),)
    return Task("t", example, example, example, metric=metric, labels=labels)


def test_extract_answer_dispatch() -> None:
    assert extract_answer(make_task("label_accuracy", SENTIMENT), "It is Negative.") == "negative"
    assert extract_answer(make_task("numeric_match"), "So 3 + 4 = 7") == "7"
    assert extract_answer(make_task("exact_match"), "Answer: apple pear\nmore") == "apple pear"
    assert extract_answer(make_task("exact_match"), "  \n") is None
    assert extract_answer(make_task("exact_match"), None) is None
