"""Shared pieces of the benchmarks: timing, the evaluator under test, and baselines written on raw llama.cpp.

The baselines live here, apart from the library, on purpose: a baseline that went through prompthone's own
code paths would hide exactly the overhead the benchmarks are there to measure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import NullCache
from prompthone.evaluation.evaluator import Evaluator, ScoringMode
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
    logsumexp,
    surface_variants,
)
from prompthone.models.llamacpp import LlamaCppModel
from prompthone.prompts.prompt import Prompt, render
from prompthone.tasks.example import Example, Task

T = TypeVar("T")
U = TypeVar("U")

# The first-token pruning threshold of the llama.cpp backend, so the direct baseline does the same work.
PRUNE_NATS = 12.0


# -- timing ----------------------------------------------------------------------------------------
def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(value, seconds) of one call, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


@dataclass(frozen=True)
class Pair:
    """Ours and the baseline, each the fastest of `repeats` alternating runs (the minimum is the least
    noisy estimate on a shared machine: load only ever adds time)."""

    ours_s: float
    baseline_s: float
    ours_all_s: tuple[float, ...]
    baseline_all_s: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ours_s": self.ours_s, "baseline_s": self.baseline_s, "ours_all_s": list(self.ours_all_s),
                "baseline_all_s": list(self.baseline_all_s)}


def time_pair(ours: Callable[[], T], baseline: Callable[[], U], repeats: int) -> tuple[T, U, Pair]:
    """Time `ours` and `baseline` alternately `repeats` times, so drift in machine load hits both alike."""
    ours_times: list[float] = []
    base_times: list[float] = []
    ours_value: Any = None
    base_value: Any = None
    for _ in range(max(1, repeats)):
        ours_value, t = timed(ours)
        ours_times.append(t)
        base_value, t = timed(baseline)
        base_times.append(t)
    pair = Pair(min(ours_times), min(base_times), tuple(ours_times), tuple(base_times))
    return ours_value, base_value, pair


# -- what is measured ------------------------------------------------------------------------------
def seed_prompt(task: Task) -> Prompt:
    """The prompt every optimizer starts from (the same one `ph.optimize` builds)."""
    return Prompt(task.instruction, output_format=task.output_format)


def eval_examples(task: Task, limit: int | None) -> list[Example]:
    """The dev then test examples (what a run scores), at most `limit` of them."""
    examples = [*task.dev, *task.test]
    return examples if limit is None else examples[:limit]


def warm_up_example(task: Task) -> Example:
    """An example outside dev+test, for warm-ups: it caches the prompt's shared prefix without making the
    first timed request an exact repeat (a repeat would time a shorter re-evaluation than the others)."""
    return (task.train or task.dev)[-1]


def evaluator(task: Task, model: Any, mode: ScoringMode) -> Evaluator:
    """An Evaluator as a run builds it, but with no cache and no budget: every request reaches the model."""
    return Evaluator(task, MeteredModel(model, meter=BudgetMeter(), cache=NullCache()), mode=mode)


def scoring_requests(task: Task, prompt: Prompt, examples: Sequence[Example]) -> list[ScoringRequest]:
    """Label-scoring requests as the evaluator builds them (the rendered prompt, the task's labels)."""
    return [ScoringRequest(render(prompt, e.input), tuple(task.labels or ())) for e in examples]


class RecordingModel:
    """Passes requests to a model and keeps them, so a baseline can replay exactly what the evaluator sent."""

    def __init__(self, inner: LlamaCppModel) -> None:
        self.inner = inner
        self.id = inner.id
        self.capabilities = inner.capabilities
        self.generation_requests: list[GenerationRequest] = []
        self.scoring_requests: list[ScoringRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        self.generation_requests.extend(requests)
        return self.inner.generate(requests)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        self.scoring_requests.extend(requests)
        return self.inner.score(requests)


class FullReevaluationModel:
    """The llama.cpp backend with the KV cache emptied before every request: no prefix reuse.

    Benchmark-only: it exists to measure what the shared-prefix reuse in `LlamaCppModel` buys.
    """

    def __init__(self, inner: LlamaCppModel) -> None:
        self.inner = inner
        self.id = inner.id + ":no-prefix-reuse"
        self.capabilities = Capabilities(generate=False, score=True, white_box=False, max_concurrency=1)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        raise NotImplementedError("FullReevaluationModel only scores")

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, request in enumerate(requests):
            self.inner._llm.reset()  # n_tokens = 0: nothing in the KV cache is reused
            yield i, next(iter(self.inner.score([request])))[1]


# -- baselines on raw llama.cpp --------------------------------------------------------------------
@dataclass(frozen=True)
class DirectGeneration:
    """One generation request reduced to what `Llama.create_completion` takes."""

    tokens: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]


def prepare_generation(model: LlamaCppModel, requests: Sequence[GenerationRequest]) -> list[DirectGeneration]:
    """Token prompts and stops for the direct loop (done before timing: a hand-written loop would too)."""
    prepared = []
    for request in requests:
        _, template_stops = model.render_chat(request.messages)
        stops = [*template_stops, *request.stop]
        prepared.append(DirectGeneration(model.tokenize_prompt(request.messages), request.max_tokens,
                                         request.temperature, request.top_p, stops))
    return prepared


def direct_generate(model: LlamaCppModel, prepared: Sequence[DirectGeneration]) -> list[str]:
    """`Llama.create_completion` in a plain loop: the floor for generate-and-parse on this model."""
    llm = model._llm
    texts = []
    for item in prepared:
        out: Any = llm.create_completion(prompt=item.tokens, max_tokens=item.max_tokens, top_p=item.top_p,
                                         temperature=item.temperature, stop=item.stop or None)
        texts.append(out["choices"][0]["text"])
    return texts


@dataclass(frozen=True)
class DirectScoring:
    """A scoring request as token ids: the prompt, and per label the token sequences of its surface forms."""

    tokens: list[int]
    label_variants: list[list[tuple[int, ...]]]


def prepare_scoring(model: LlamaCppModel, requests: Sequence[ScoringRequest]) -> list[DirectScoring]:
    """Token ids for the direct label loop (done before timing, as a hand-written loop would)."""
    llm = model._llm
    variant_ids: dict[str, tuple[int, ...]] = {}

    def ids(text: str) -> tuple[int, ...]:
        if text not in variant_ids:
            variant_ids[text] = tuple(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        return variant_ids[text]

    return [DirectScoring(model.tokenize_prompt(r.messages),
                          [sorted({ids(v) for v in surface_variants(c)} - {()}) for c in r.continuations])
            for r in requests]


def _log_softmax_last(model: LlamaCppModel) -> np.ndarray:
    llama_cpp = model._llama_cpp
    n_vocab = model._llm.n_vocab()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model._llm.ctx, -1), shape=(n_vocab,))
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - math.log(float(np.exp(shifted).sum()))


def direct_label_logprobs(model: LlamaCppModel, prepared: Sequence[DirectScoring]) -> list[tuple[float, ...]]:
    """Label log-probabilities straight from llama.cpp, with the same algorithm as the backend.

    Per example: keep the longest prompt prefix already in the KV cache, evaluate the rest, read the last
    logits, and for each label sum (logsumexp) the probabilities of its case/leading-space forms, evaluating
    the later tokens of multi-token forms unless their first token is hopeless. This is the fairest direct
    equivalent: the same numbers from the same llama.cpp calls, minus prompthone's layers.
    """
    llm = model._llm
    out: list[tuple[float, ...]] = []
    for item in prepared:
        tokens = item.tokens
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            common += 1
        llm.n_tokens = min(common, len(tokens) - 1)
        llm.eval(tokens[llm.n_tokens:])
        first = _log_softmax_last(model)
        base, best_first = llm.n_tokens, float(first.max())
        scores = []
        for variants in item.label_variants:
            values = []
            for seq in variants:
                total = float(first[seq[0]])
                if len(seq) > 1:
                    if total < best_first - PRUNE_NATS:
                        continue
                    llm.n_tokens = base
                    for k in range(1, len(seq)):
                        llm.eval([seq[k - 1]])
                        total += float(_log_softmax_last(model)[seq[k]])
                values.append(total)
            scores.append(logsumexp(values))
        llm.n_tokens = base - 1
        out.append(tuple(scores))
    return out


def max_abs_diff(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Largest |a - b| over matching entries (inf when the shapes differ or one side is not finite)."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        return math.inf
    diffs = [abs(p - q) for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True)
             if p != q]  # equal infinities count as equal
    return max(diffs, default=0.0)
