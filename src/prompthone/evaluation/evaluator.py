"""Runs a prompt over examples and scores it: the hot path every optimizer shares.

Two ways to get a prediction: label scoring (the log-probability of each allowed label as the start of the
reply, argmax wins: no generation, no parsing, the default for classification when the backend can score)
and generate-and-parse (generate, then extract the answer). Per-example results are kept so selection
methods (bandits) can sample and compare prompts example by example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from prompthone.errors import ConfigError
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message, ScoringRequest, logsumexp
from prompthone.prompts.calibration import Calibration, calibration_inputs, check_calibration
from prompthone.prompts.prompt import INPUT_PREFIX, Prompt, answer_prefill, render
from prompthone.tasks.answers import extract_answer
from prompthone.tasks.example import Example, Task
from prompthone.tasks.metrics import get_metric

ScoringMode = Literal["auto", "labels", "generate"]

# A floor for log-probabilities so one impossible target cannot make a mean -inf.
_LOGPROB_FLOOR = -50.0


@dataclass(frozen=True)
class ExampleResult:
    """The outcome on one example: the extracted prediction, its metric score and the raw model output."""

    input: str
    target: str
    prediction: str | None
    score: float
    raw: str
    #: the backend's label log-probabilities (label scoring only): a calibration can be applied afterwards
    label_logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class AnswerContext:
    """Where a prediction starts: the chat messages and the reply written so far (after any reasoning)."""

    messages: tuple[Message, ...]
    prefill: str = ""
    reasoning: str | None = None

    def show(self, answer: str) -> str:
        """The raw record of one example: the reasoning (if any), then what was read as the answer."""
        return answer if self.reasoning is None else f"{self.reasoning.strip()}\n→ {answer}"


@dataclass(frozen=True)
class EvalResult:
    """A prompt's aggregate score on a set of examples, with every per-example result."""

    score: float
    examples: tuple[ExampleResult, ...]

    @property
    def n(self) -> int:
        return len(self.examples)

    def per_example(self) -> list[float]:
        return [r.score for r in self.examples]


#: new tokens an answer may take when it is generated and parsed (labels and short answers need far fewer)
ANSWER_TOKENS = 64


class Evaluator:
    """Scores prompts for one task on one (metered) task model.

    `mode='auto'` uses label scoring when the task has a closed label set and the backend declares the
    `score` capability, and generate-and-parse otherwise.

    A prompt that reasons (`Prompt.reasoning_tokens > 0`) is answered in two stages: the model generates its
    reasoning greedily, then the answer is read (by label scoring or by generating) after the reasoning and the
    prompt's extractor, in the same assistant turn where the backend can continue a partial reply
    (`capabilities.prefill`), else in a second user turn holding the extractor.
    """

    def __init__(self, task: Task, model: MeteredModel, *, mode: ScoringMode = "auto",
                 max_tokens: int = ANSWER_TOKENS,
                 renderer: Callable[[Prompt, str], tuple[Message, ...]] = render) -> None:
        self.task = task
        self.model = model
        self.renderer = renderer  # prompt + input → chat messages (`export --verify` sends an exported form's)
        self.metric = get_metric(task.metric)
        can_score = model.model.capabilities.score
        if mode == "labels" and not (task.labels and can_score):
            raise ConfigError("label scoring needs a task with labels and a backend that returns log-probabilities"
                              f" (task labels: {task.labels}, backend scores: {can_score})")
        self.mode: Literal["labels", "generate"] = (
            "labels" if mode == "labels" or (mode == "auto" and task.labels and can_score) else "generate")
        self.max_tokens = max_tokens

    def evaluate(self, prompt: Prompt, examples: Sequence[Example]) -> EvalResult:
        """Score `prompt` on `examples` (raises BudgetExhausted if the budget runs out part-way)."""
        if not examples:
            return EvalResult(0.0, ())
        label_logprobs: list[tuple[float, ...] | None]
        if self.mode == "labels":
            predictions, raws, label_logprobs = self._predict_labels(prompt, examples)
        else:
            predictions, raws = self._predict_generate(prompt, examples)
            label_logprobs = [None] * len(examples)
        targets = [e.target for e in examples]
        results = tuple(
            ExampleResult(e.input, e.target, p, self.metric.per_example(p, e.target), raw, lp)
            for e, p, raw, lp in zip(examples, predictions, raws, label_logprobs, strict=True))
        score = self.metric.aggregate(predictions, targets, self.task.labels)
        return EvalResult(score, results)

    def likelihood(self, prompt: Prompt, examples: Sequence[Example]) -> EvalResult:
        """Mean log-probability of the targets (APE's likelihood score); needs the `score` capability.

        For classification the log-probability is normalized over the label set (log-softmax of the label
        scores), so a prompt is rewarded for putting mass on the right label, not on labels in general.
        """
        if not self.model.model.capabilities.score:
            raise ConfigError("likelihood scoring needs a backend that returns log-probabilities; "
                              "use the task metric instead (e.g. APE option score_with=metric)")
        if not examples:
            return EvalResult(0.0, ())
        labels = tuple(self.task.labels or ())
        contexts = self.answer_contexts(prompt, examples)
        requests = [ScoringRequest(c.messages, labels or (e.target,), prefill=c.prefill)
                    for c, e in zip(contexts, examples, strict=True)]
        results: list[ExampleResult] = []
        for e, c, scores in zip(examples, contexts, self.model.score(requests), strict=True):
            if labels:
                norm = logsumexp(scores.logprobs)
                gold = labels.index(e.target) if e.target in labels else -1
                value = scores.logprobs[gold] - norm if gold >= 0 else -math.inf
            else:
                value = scores.logprobs[0]
            value = max(value, _LOGPROB_FLOOR)
            results.append(ExampleResult(e.input, e.target, None, value, c.show(f"logp={value:.3f}")))
        return EvalResult(sum(r.score for r in results) / len(results), tuple(results))

    def _predict_labels(self, prompt: Prompt, examples: Sequence[Example],
                        ) -> tuple[list[str | None], list[str], list[tuple[float, ...] | None]]:
        """The argmax label of each example (after the prompt's calibration, if it has one), the raw record and
        the label log-probabilities as the backend gave them."""
        labels = tuple(self.task.labels or ())
        contexts, requests = self._label_requests(prompt, examples)
        predictions: list[str | None] = []
        raws: list[str] = []
        kept: list[tuple[float, ...] | None] = []
        for c, scores in zip(contexts, self.model.score(requests), strict=True):
            predictions.append(_decide(labels, scores.logprobs, prompt.calibration))
            raws.append(c.show(" ".join(f"{lab}={lp:.3f}" if math.isfinite(lp) else f"{lab}=-inf"
                                        for lab, lp in zip(labels, scores.logprobs, strict=True))))
            kept.append(tuple(scores.logprobs))
        return predictions, raws, kept

    def _label_requests(self, prompt: Prompt, examples: Sequence[Example],
                        ) -> tuple[list[AnswerContext], list[ScoringRequest]]:
        """The answer contexts of `examples` under `prompt` and one label-scoring request per context."""
        labels = tuple(self.task.labels or ())
        contexts = self.answer_contexts(prompt, examples)
        return contexts, [ScoringRequest(c.messages, labels, prefill=c.prefill) for c in contexts]

    def rescore(self, result: EvalResult, calibration: Calibration | None) -> EvalResult:
        """`result` read again under another calibration (None: the raw argmax) from the label log-probabilities
        it kept: no call is made, so a candidate is tried with and without its prior for free. Without a
        calibration a generated result is read as it is (its aggregate recomputed over its rows: a part of a split
        scored in pieces)."""
        labels = tuple(self.task.labels or ())
        if calibration is None and self.mode != "labels":
            rows = list(result.examples)
        elif self.mode != "labels" or any(r.label_logprobs is None for r in result.examples):
            raise ConfigError("only a label-scored evaluation can be read again under another calibration")
        else:
            rows = []
            for r in result.examples:
                prediction = _decide(labels, r.label_logprobs or (), calibration)
                rows.append(replace(r, prediction=prediction, score=self.metric.per_example(prediction, r.target)))
        score = self.metric.aggregate([r.prediction for r in rows], [r.target for r in rows], self.task.labels)
        return EvalResult(score, tuple(rows))

    def calibrate(self, prompt: Prompt, method: str) -> Prompt:
        """`prompt` with its label prior estimated (`prompts.calibration`): from the content-free inputs
        (contextual) or the first `BATCH_INPUTS` training inputs (batch), never a test input. The calls are
        metered like any other. "none", or a task scored by generation, leaves the prompt as it is."""
        if check_calibration(method) == "none" or self.mode != "labels":
            return prompt
        labels = tuple(self.task.labels or ())
        inputs = calibration_inputs(method, self.task.train)
        _, requests = self._label_requests(prompt, [Example(text, "") for text in inputs])
        rows = [list(scores.logprobs) for scores in self.model.score(requests)]
        return replace(prompt, calibration=Calibration.estimate(method, labels, rows))

    def _predict_generate(self, prompt: Prompt, examples: Sequence[Example],
                          ) -> tuple[list[str | None], list[str]]:
        contexts = self.answer_contexts(prompt, examples)
        requests = [GenerationRequest(c.messages, max_tokens=self.max_tokens, temperature=0.0,
                                      stop=(f"\n{INPUT_PREFIX}",), prefill=c.prefill) for c in contexts]
        completions = self.model.generate(requests)
        return ([extract_answer(self.task, c.text) for c in completions],
                [ctx.show(c.text) for ctx, c in zip(contexts, completions, strict=True)])

    def answer_contexts(self, prompt: Prompt, examples: Sequence[Example]) -> list[AnswerContext]:
        """Where each example's answer is read: right after the prompt, or after the model's own reasoning.

        Reasoning costs one generation per example (greedy, capped at `prompt.reasoning_tokens`), metered and
        cached like every call.
        """
        messages = [self.renderer(prompt, e.input) for e in examples]
        start = prompt.answer_prefix
        if start and not self.model.model.capabilities.prefill:
            raise ConfigError(f"this prompt's answer_prefix needs a backend that can continue a partly written "
                              f"reply (prefill); {self.model.model.id} cannot: use an embedded model or "
                              f"llama.cpp's server, or a prompt without one")
        if not prompt.reasons:
            return [AnswerContext(m, start) for m in messages]
        requests = [GenerationRequest(m, max_tokens=prompt.reasoning_tokens, temperature=0.0,
                                      stop=(f"\n{INPUT_PREFIX}",), prefill=start) for m in messages]
        reasonings = [c.text for c in self.model.generate(requests)]
        if self.model.model.capabilities.prefill:
            return [AnswerContext(m, answer_prefill(start + r, prompt.extractor), r)
                    for m, r in zip(messages, reasonings, strict=True)]
        return [AnswerContext((*m, Message("assistant", r.strip()), Message("user", prompt.extractor)), "", r)
                for m, r in zip(messages, reasonings, strict=True)]


def _decide(labels: tuple[str, ...], logprobs: Sequence[float], calibration: Calibration | None) -> str:
    """The argmax label of the backend's log-probabilities, after dividing out `calibration`'s prior (if any)."""
    scores = list(logprobs) if calibration is None else calibration.apply(labels, logprobs)
    return labels[max(range(len(labels)), key=lambda k: scores[k])]
