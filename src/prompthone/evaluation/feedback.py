"""Textual feedback on one answer: what was expected, what was produced and why it scored as it did (GEPA's μ_f).

GEPA (Agrawal et al., 2025) reflects on evaluation traces enriched by a feedback function that explains each score
in words; its hallmark is that richer feedback makes better reflections. A task may bring its own
(`Task.feedback`, called as `feedback(result, task)`); otherwise `default_feedback` says, by the kind of task:

- label tasks: the label chosen and the expected one, and, where label scoring gave log-probabilities, how the
  model's probability was spread over the labels (so the reflection sees a near miss from a confident error);
- numeric tasks (`numeric_match`): the number read from the answer, the expected one and how far off it is, or
  that no number could be read;
- every other metric: the score under the metric's name and the expected answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prompthone.evaluation.evaluator import ExampleResult
from prompthone.prompts.calibration import log_softmax
from prompthone.tasks.example import Task
from prompthone.tasks.metrics import parse_number

Feedback = Callable[[ExampleResult, Task], str]


def feedback_for(task: Task) -> Feedback:
    """The task's own feedback function, else `default_feedback`."""
    own: Feedback | None = task.feedback
    return own if own is not None else default_feedback


def default_feedback(result: ExampleResult, task: Task) -> str:
    """What was expected, what was produced and why it scored as it did, in one or two sentences."""
    got = result.prediction
    if task.labels:
        return _label_feedback(result, task.labels)
    if task.metric == "numeric_match":
        return _numeric_feedback(result)
    verdict = _verdict(result.score)
    shown = f"'{got}'" if got is not None else "no answer that could be read"
    return (f"The answer is {verdict}: {shown} scores {result.score:.2f} under {task.metric} against the expected "
            f"answer '{result.target}'.")


def _verdict(score: float) -> str:
    return "correct" if score >= 1.0 else "partly correct" if score > 0 else "incorrect"


def _label_feedback(result: ExampleResult, labels: tuple[str, ...]) -> str:
    got = result.prediction
    if result.score >= 1.0:
        text = f"The answer is correct: '{result.target}' is the expected label."
    elif got is None:
        text = f"The answer is incorrect: no label could be read; the expected label is '{result.target}'."
    else:
        text = f"The answer is incorrect: the model chose '{got}', but the expected label is '{result.target}'."
    spread = _label_spread(result.label_logprobs, labels)
    return f"{text} {spread}" if spread else text


def _label_spread(logprobs: tuple[float, ...] | None, labels: tuple[str, ...]) -> str:
    """How the model's probability was spread over the labels (softmax of its label log-probabilities)."""
    if not logprobs or len(logprobs) != len(labels) or not all(math.isfinite(v) for v in logprobs):
        return ""
    probabilities = [math.exp(v) for v in log_softmax(logprobs)]
    ranked = sorted(zip(labels, probabilities, strict=True), key=lambda pair: -pair[1])
    return "Its probability over the labels: " + ", ".join(f"'{label}' {p:.0%}" for label, p in ranked) + "."


def _numeric_feedback(result: ExampleResult) -> str:
    expected = parse_number(result.target)
    got = parse_number(result.prediction)
    if result.score >= 1.0:
        return f"The answer is correct: {result.target} is the expected number."
    if got is None:
        return f"The answer is incorrect: no number could be read from it; the expected number is {result.target}."
    off = f" (off by {got - expected:+g})" if expected is not None else ""
    return (f"The answer is incorrect: the number read from it is {got:g}, but the expected number is "
            f"{result.target}{off}.")
