"""MIPROv2 end to end on the embedded model: bootstrapped demo sets, grounded proposals and a short TPE search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes.run_files import assert_run_files, read_jsonl

import prompthone as ph
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example

pytestmark = pytest.mark.e2e

# 16 train, 8 dev: ≤ 16 bootstrap calls, 2 summary + 2 proposal calls, the seed on dev (8), 6 trials × 4,
# 2 full evaluations × 8: at most 68 calls.
TINY = {"num_demo_sets": 4, "max_bootstrapped_demos": 2, "max_labeled_demos": 3, "num_instruction_candidates": 3,
        "num_trials": 6, "minibatch_size": 4, "minibatch_full_eval_steps": 3, "view_data_batch_size": 8,
        "max_summary_batches": 1, "meta_max_tokens": 80}
BUDGET = 90


def test_mipro_end_to_end(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    result = ph.optimize(task, method="mipro", model=embedded_model, budget=BUDGET, seed=1, options=TINY,
                         run_dir=tmp_path, cache=tmp_path / "calls.sqlite", progress=False)
    run = Path(result.run_dir or "")
    assert_run_files(run)
    assert result.spend["calls"] <= BUDGET
    assert result.stopped_reason == "finished" and result.steps == TINY["num_trials"]
    assert result.best_dev_score >= result.seed_dev_score
    assert result.best_prompt.output_format == task.output_format

    events = read_jsonl(run / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds.count("trial") == TINY["num_trials"] and kinds.count("full_eval") == 2
    assert all({"instruction", "demo_set"} == set(e["params"]) for e in events if e["event"] == "trial")
    assert next(e for e in events if e["event"] == "dataset_summary")["summary"]
    instructions = next(e for e in events if e["event"] == "instructions")["instructions"]
    assert instructions[0]["instruction"] == task.instruction and len(instructions) >= 2
    sets = next(e for e in events if e["event"] == "demo_sets")["sets"]
    assert len(sets) == TINY["num_demo_sets"] and sets[0]["demos"] == []

    candidates = {}
    for line in (run / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        candidates[record["id"]] = record
    for cand in candidates.values():
        assert cand["prompt"]["demos"] == sets[cand["data"]["demo_set_index"]]["demos"]
    assert any(cand["prompt"]["demos"] for cand in candidates.values()), "no trial used a demo set"

    # Bootstrapped demos are training examples the seed prompt answers correctly.
    bootstrapped = [Example(d["input"], d["target"]) for s in sets for d in s["demos"][:s["bootstrapped"]]]
    assert bootstrapped
    evaluator = Evaluator(task, MeteredModel(embedded_model, meter=BudgetMeter()))
    seed = Prompt(task.instruction, output_format=task.output_format)
    assert evaluator.evaluate(seed, list(dict.fromkeys(bootstrapped))).score == 1.0
