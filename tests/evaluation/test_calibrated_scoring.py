"""Calibrated label scoring through the Evaluator: exact on a model with a known label bias (a test double:
arithmetic only; the evidence on real models is in the e2e tests)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import pytest

from prompthone.errors import ConfigError
from prompthone.evaluation.evaluator import Evaluator
from prompthone.models.base import Capabilities, ContinuationScores, GenerationRequest, ScoringRequest
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.prompts.prompt import Prompt
from prompthone.run.config import RunConfig
from prompthone.run.driver import run_optimization
from prompthone.run.session import Session
from prompthone.store import RunStore
from prompthone.tasks.example import Example, Task


class BiasedModel:
    """p(positive) is 0.95 for an input saying "good", else 0.7: it says positive to everything."""

    id = "fake:biased"
    capabilities = Capabilities(generate=False, score=True)

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, object]]:
        raise AssertionError("label scoring only")

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.calls += 1
            p = 0.95 if "good" in r.messages[-1].content.rsplit("Input:", 1)[-1] else 0.7
            yield i, ContinuationScores((math.log(p), math.log(1 - p)), prompt_tokens=5)

    def close(self) -> None:
        return None


def _task() -> Task:
    def ex(i: int) -> Example:
        return Example(f"item {i} is good" if i % 2 else f"item {i} is bad", "positive" if i % 2 else "negative")
    return Task("biased", tuple(ex(i) for i in range(40)), tuple(ex(i) for i in range(40, 60)),
                tuple(ex(i) for i in range(60, 80)), metric="label_accuracy", labels=("positive", "negative"))


def test_batch_calibration_divides_out_the_prior_and_is_kept_with_the_prompt() -> None:
    task, model = _task(), BiasedModel()
    evaluator: Evaluator = Session().evaluator(task, model, mode="labels")
    seed = Prompt("Classify the sentiment.")
    raw = evaluator.evaluate(seed, task.test)
    assert raw.score == 0.5 and {r.prediction for r in raw.examples} == {"positive"}
    assert all(r.label_logprobs is not None for r in raw.examples)
    before = model.calls
    calibrated = evaluator.calibrate(seed, "batch")
    assert model.calls - before == 32  # the prior costs one call per calibration input, train inputs only
    assert calibrated.calibration is not None and calibrated.calibration.n == 32
    assert math.exp(calibrated.calibration.log_prior[0]) == pytest.approx(0.825, abs=1e-4)
    assert evaluator.evaluate(calibrated, task.test).score == 1.0
    assert evaluator.calibrate(seed, "none") is seed
    assert evaluator.rescore(evaluator.evaluate(calibrated, task.test), None) == raw  # free, both ways
    assert evaluator.rescore(raw, calibrated.calibration).score == 1.0



@dataclass
class OneEdit(Optimizer):
    """Proposes one edit of the seed (which inherits the seed's prompt, calibration included) and stops."""

    name: ClassVar[str] = "one-edit"

    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        edited = replace(state.pool[0].prompt, instruction="Say whether the item is good.")
        cand = ctx.new_candidate(state, edited, parent=0, origin="test")
        if cand is not None:
            ctx.score(cand, ctx.task.dev, ScoreKey.DEV)
        return [cand] if cand else []

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        state.done = True


def test_a_calibrated_run_estimates_every_candidates_own_prior_and_records_it(tmp_path: Path) -> None:
    model = BiasedModel()
    result = run_optimization(_task(), OneEdit(), task_model=model, run_root=tmp_path, progress=False,
                              scoring="labels", calibration="batch", final_top_k=1)
    assert result.seed_prompt.calibration is not None and result.best_prompt.calibration is not None
    assert result.seed_test_score == 1.0 and result.test_score == 1.0  # uncalibrated, both would be 0.5
    assert result.uncalibrated_seed_test_score == 0.5  # read from the kept log-probabilities, no call
    assert result.vs_uncalibrated_seed is not None and result.vs_uncalibrated_seed["difference"] == 0.5
    assert (result.improvement_over_uncalibrated_seed or "").startswith("improved by +0.500")
    with RunStore.default(tmp_path) as store:
        run = store.list_runs()[0]
        assert RunConfig.from_dict(run.config).calibration == "batch"
        prompts = [c["prompt"] for c in store.candidates(run.id).values()]
    # the edit's prior is its own estimate (32 more calls), not the one it inherited from the seed
    assert len(prompts) == 2 and all(p["calibration"]["n"] == 32 for p in prompts)
    assert result.spend["calls"] == 2 * 32 + 20  # two priors, and the edit's dev score (the seed's is final)
    assert Prompt.from_dict(result.to_dict()["best_prompt"]) == result.best_prompt  # the prior survives a save


def test_an_unknown_calibration_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown calibration 'platt'"):
        run_optimization(_task(), OneEdit(), task_model=BiasedModel(), run_root=tmp_path, progress=False,
                         calibration="platt")
