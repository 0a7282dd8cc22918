"""The pre-run estimate: each method's stated step cost against what its run really spends (fake models count
every call exactly), the budget verdict, the warning and the event a run records, and `optimize --dry-run`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.fakes.fake_model import CountingModel, ReplyingModel
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.evaluation.budget import Budget
from prompthone.optimizers.ape import APE
from prompthone.optimizers.apo import APO
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.opro import OPRO
from prompthone.run.driver import run_optimization
from prompthone.run.estimate import estimate
from prompthone.tasks.example import Example, Task

LABELS = ("yes", "no")


def _task(n_train: int = 12, n_dev: int = 8) -> Task:
    examples = [Example(f"case {i}", LABELS[i % 2]) for i in range(n_train + n_dev + 4)]
    return Task("t", tuple(examples[:n_train]), tuple(examples[n_train:n_train + n_dev]),
                tuple(examples[n_train + n_dev:]), metric="label_accuracy", labels=LABELS, instruction="Decide.")


def _distinct(text: str, n: int) -> str:
    return f"<START>Decide carefully, variant {n}.<END>"


@pytest.mark.parametrize("optimizer", [
    OPRO(steps=3, num_generated_instructions=2, score_examples=5),
    APE(num_subsamples=2, num_demos=2, num_prompts_per_subsample=3, eval_samples=4),
    APE(num_subsamples=2, num_demos=2, num_prompts_per_subsample=3, eval_samples=4, mc_rounds=2, mc_top_k=2,
        mc_samples_per_prompt=2),
], ids=["opro", "ape", "ape-mc"])
def test_the_estimate_is_what_a_run_of_distinct_candidates_spends(optimizer, tmp_path: Path) -> None:
    task = _task()
    found = estimate(optimizer, task, None)
    assert found.cost is not None
    result = run_optimization(task, optimizer, task_model=CountingModel(), meta_model=ReplyingModel(_distinct),
                              run_root=tmp_path, progress=False)
    assert result.spend["calls"] == found.cost.total()
    events = [json.loads(line) for line in (Path(result.run_dir or "") / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "estimate" and events[0]["cost"]["unit"] == found.cost.unit


def test_apo_arithmetic_for_a_small_configuration() -> None:
    apo = APO(rounds=2, beam_size=2, minibatch_size=4, n_gradients=1, mc_samples_per_step=1, eval_rounds=2,
              eval_prompts_per_round=3, samples_per_eval=5)
    # per parent: 1 edit + 2 paraphrases (the edit's and the parent's) = 3 successors, 4 meta calls (gradient,
    # edit, 2 paraphrases); round 1 expands the seed: 4 minibatch calls + 2 bandit rounds x 3 arms x 5 samples
    assert apo.step_cost(TaskShape(train=10, dev=6)) == StepCost("round", 34, 4, 38, 8, 2, (
        "eval_rounds", "samples_per_eval", "minibatch_size"))
    # reasoning prompts pay two calls per example; contextual calibration 3 per prompt first scored (the seed, then
    # its 3 successors)
    assert apo.step_cost(TaskShape(train=10, dev=6, example_calls=2, calibration_calls=3)).first_task == 2 * 34 + 12


def test_apo_at_its_paper_defaults_with_300_calls_is_told_it_cannot_finish_a_round(tmp_path: Path, caplog) -> None:
    task = _task(n_train=80, n_dev=20)
    found = estimate(APO(), task, Budget(calls=300))
    assert found.short and found.steps_paid == 0 and found.cost is not None and found.cost.first > 2000
    assert "ends inside round 1" in (found.verdict() or "") and "eval_rounds" in (found.verdict() or "")
    with caplog.at_level(logging.WARNING):
        result = run_optimization(task, APO(), task_model=CountingModel(), meta_model=ReplyingModel(_distinct),
                                  budget=Budget(calls=300), run_root=tmp_path, progress=False)
    assert result.steps == 0 and result.stopped_reason == "budget"
    assert any("ends inside round 1" in r.getMessage() for r in caplog.records)


def test_the_verdict_counts_the_steps_a_budget_pays_for() -> None:
    cost = StepCost("trial", 100, 5, 40, 0, 10, ("minibatch_size",))
    assert cost.total() == 105 + 9 * 40 and cost.steps_within(104) == 0 and cost.steps_within(105) == 1
    assert cost.steps_within(185) == 3 and cost.steps_within(10**6) == 10
    assert cost.steps_within(100, task_only=True) == 1  # a task-call limit ignores the meta calls
    open_ended = StepCost("iteration", 50, 1, 20, 1, None, ("minibatch_size",))
    assert open_ended.total() is None and open_ended.steps_within(10**3) == 1 + (1000 - 51) // 21


def test_dry_run_prints_the_estimate_and_loads_no_model(tmp_path: Path) -> None:
    task = tmp_path / "t.jsonl"
    task.write_text("".join(json.dumps({"input": f"case {i}", "target": LABELS[i % 2]}) + "\n" for i in range(60)))
    result = CliRunner().invoke(app, ["optimize", "--task", str(task), "--method", "apo", "--budget", "300",
                                      "--dry-run", "--model", f"gguf:{tmp_path / 'missing.gguf'}",
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "estimate: apo:" in result.stdout and "ends inside round 1" in result.stdout
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_greater_states_its_reasoning_and_dev_sample_calls() -> None:
    from prompthone.optimizers.greater import GREATER

    cost = GREATER(n_train=8, shortlist=3, dev_samples=16, steps=12).step_cost(TaskShape(train=100, dev=60))
    # two prompts on 16 dev examples at two calls each, then (1 + 3) x 8 reasonings and one changed prompt's 32
    assert (cost.first_task, cost.per_step_task, cost.steps) == (64 + 32 + 32, 24 + 32, 12)
    assert cost.first_meta == cost.per_step_meta == 0
