"""The driver's finalization: which candidates are re-scored on the full dev split, and what that costs.

A one-step method proposes one instruction and ranks it above the seed by its own (made-up) score; the fake model
answers deterministically, so the finalization's calls can be counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
from tests.fakes.fake_model import CountingModel

from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.optimizers.driver import run_optimization
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task


@dataclass
class OneProposal(Optimizer):
    """Proposes one instruction and trusts it: its own score ranks it first."""

    name: ClassVar[str] = "one-proposal"

    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        cand = ctx.new_candidate(state, Prompt("A proposed instruction."), parent=None, origin="test")
        return [cand] if cand else []

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        for cand in proposals:
            ctx.record_score(cand, self.rank_key, 1.0, 1)
        state.done = True


def _task(with_test: bool) -> Task:
    examples = tuple(Example(f"review {i}", "yes" if i % 2 else "no") for i in range(12))
    return Task("t", examples[:4], examples[4:8], examples[8:] if with_test else (), metric="label_accuracy",
                labels=("yes", "no"), instruction="Seed instruction.")


@pytest.mark.parametrize(("top_k", "dev_calls"), [(0, 0), (1, 8), (3, 8)])
def test_top_k_sets_how_many_finalists_are_rescored_on_dev(top_k: int, dev_calls: int) -> None:
    result = run_optimization(_task(with_test=False), OneProposal(), task_model=CountingModel(), run_root=None,
                              progress=False, final_top_k=top_k)
    assert result.final_spend["calls"] == dev_calls  # seed + the one proposal, 4 dev examples each; no test split
    assert result.test_score != result.test_score  # NaN: nothing to score on test, and nothing was
    if top_k == 0:
        assert result.best_prompt.instruction == "A proposed instruction."  # the method's own best, unverified
        assert result.best_dev_score != result.best_dev_score


def test_with_a_test_split_the_seed_and_the_winner_are_scored_on_it() -> None:
    result = run_optimization(_task(with_test=True), OneProposal(), task_model=CountingModel(), run_root=None,
                              progress=False, final_top_k=1)
    assert result.test_score == result.test_score and result.seed_test_score == result.seed_test_score
    assert result.final_spend["calls"] in (8 + 4, 8 + 8)  # dev for both; test for the seed and (if it won) the other
