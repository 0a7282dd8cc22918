"""The driver's finalization: which candidates are re-scored on the full dev split, and what that costs.

A one-step method proposes one instruction and ranks it above the seed by its own (made-up) score; the fake model
answers deterministically, so the finalization's calls can be counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
from tests.fakes.fake_model import CountingModel
from tests.fakes.run_files import read_jsonl

from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.prompts.prompt import Prompt
from prompthone.run.driver import run_optimization
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


def test_the_run_directory_keeps_every_example_and_the_per_example_outcomes_of_full_scorings(tmp_path) -> None:
    task = _task(with_test=True)
    result = run_optimization(task, OneProposal(), task_model=CountingModel(), run_root=tmp_path, progress=False,
                              final_top_k=1)
    run = tmp_path / str(result.run_dir).rsplit("/", 1)[-1]
    examples = read_jsonl(run / "examples.jsonl")
    assert [(e["split"], e["index"]) for e in examples] == [(s, i) for s, n in (("train", 4), ("dev", 4), ("test", 4))
                                                            for i in range(n)]
    by_key = {e["hash"]: e for e in examples}
    assert len(by_key) == 12 and all(by_key[ex.key]["input"] == ex.input for ex in task.dev)
    evaluations = read_jsonl(run / "evaluations.jsonl")
    seed_dev = [e for e in evaluations if e["candidate"] == 0 and e["key"] == "dev"]
    assert sorted(by_key[e["hash"]]["index"] for e in seed_dev) == [0, 1, 2, 3]
    assert all(by_key[e["hash"]]["split"] == "dev" for e in seed_dev)
    assert sum(e["score"] for e in seed_dev) / 4 == result.seed_dev_score
    seed_test = [e for e in evaluations if e["candidate"] == 0 and e["key"] == "test"]
    assert len(seed_test) == 4 and sum(e["score"] for e in seed_test) / 4 == result.seed_test_score
    assert all(set(e) == {"candidate", "key", "hash", "prediction", "score"} for e in evaluations)
