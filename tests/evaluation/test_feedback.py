"""The default feedback (GEPA's μ_f) says what was expected, what was produced and why it scored as it did."""

from __future__ import annotations

import math

from prompthone.evaluation.evaluator import ExampleResult
from prompthone.evaluation.feedback import default_feedback, feedback_for
from prompthone.tasks.example import Task

LABELS = Task("t", (), (), (), metric="label_accuracy", labels=("positive", "negative"))


def test_a_label_answer_names_both_labels_and_the_probability_spread() -> None:
    wrong = ExampleResult("x", "positive", "negative", 0.0, "negative",
                          label_logprobs=(math.log(0.3), math.log(0.7)))
    assert default_feedback(wrong, LABELS) == (
        "The answer is incorrect: the model chose 'negative', but the expected label is 'positive'. "
        "Its probability over the labels: 'negative' 70%, 'positive' 30%.")
    right = ExampleResult("x", "positive", "positive", 1.0, "positive")
    assert default_feedback(right, LABELS) == "The answer is correct: 'positive' is the expected label."


def test_a_numeric_answer_says_how_far_off_it_is() -> None:
    task = Task("t", (), (), (), metric="numeric_match")
    assert default_feedback(ExampleResult("x", "42", "41", 0.0, "It is 41."), task) == (
        "The answer is incorrect: the number read from it is 41, but the expected number is 42 (off by -1).")
    assert "no number could be read" in default_feedback(ExampleResult("x", "42", None, 0.0, "no idea"), task)
    assert default_feedback(ExampleResult("x", "42", "42", 1.0, "42"), task).startswith("The answer is correct")


def test_other_metrics_give_the_score_and_the_expected_answer() -> None:
    task = Task("t", (), (), (), metric="exact_match")
    assert default_feedback(ExampleResult("x", "b a", "a b", 0.0, "a b"), task) == (
        "The answer is incorrect: 'a b' scores 0.00 under exact_match against the expected answer 'b a'.")


def test_a_tasks_own_feedback_is_used() -> None:
    def own(result: ExampleResult, task: Task) -> str:
        return "mine"

    assert feedback_for(Task("t", (), (), (), feedback=own)) is own
    assert feedback_for(LABELS) is default_feedback
