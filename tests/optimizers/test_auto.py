"""The `auto` method with exact checks on a scripted model: the pool, the budget fit, the race, calibration arms,
the finalists' reused dev scores, generation tasks. The e2e run on the embedded models is tests/e2e/test_auto_e2e.py.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget, BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Capabilities, Completion, ContinuationScores, GenerationRequest, ScoringRequest
from prompthone.optimizers import get_method
from prompthone.optimizers.auto import RACE_KEY, Auto
from prompthone.optimizers.auto_pool import balanced_demos, bootstrapped_demos, demo_sets, stratified_order
from prompthone.optimizers.base import OptimizationContext, OptimizationState
from prompthone.optimizers.mipro_demos import SeedJudge
from prompthone.prompts.prompt import Prompt
from prompthone.run.driver import run_optimization
from prompthone.tasks.example import Example, Task

LABELS = ("positive", "negative")
_INPUT = re.compile(r"^Input: (.*)$", re.M)


class BiasedModel:
    """A model that knows the answer (the word good/bad) but leans hard towards 'positive', as small models lean
    towards one label: uncalibrated it says 'positive' to almost everything; dividing the prior out recovers the
    signal. Demos in the prompt halve the lean. Content-free inputs get the lean alone."""

    def __init__(self) -> None:
        self.id = "fake:biased"
        self.capabilities = Capabilities(generate=True, score=True)
        self.scored = 0
        self.generated = 0

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.scored += 1
            content = r.messages[-1].content
            text = _INPUT.findall(content)[-1]
            lean = 1.0 if content.count("Input:") > 1 else 2.0
            signal = 1.5 if "good" in text else -1.5 if "bad" in text else 0.0
            yield i, ContinuationScores((lean + signal, 0.0)[:len(r.continuations)], prompt_tokens=10)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.generated += 1
            text = r.messages[-1].content
            if "observations" in text.lower() or "summarize" in text.lower():
                reply = "Observations: short reviews labelled positive or negative."
            else:
                reply = f"<START>Decide whether the review is positive or negative ({self.generated}).<END>"
            yield i, Completion(reply, prompt_tokens=20, completion_tokens=10)

    def close(self) -> None:
        return None


def _task(n_train: int = 24, n_dev: int = 40, n_test: int = 40) -> Task:
    def make(start: int, n: int) -> tuple[Example, ...]:
        return tuple(Example(f"{'good' if k % 2 else 'bad'} review {k}", "positive" if k % 2 else "negative")
                     for k in range(start, start + n))

    return Task("reviews", make(0, n_train), make(100, n_dev), make(200, n_test), metric="label_accuracy",
                labels=LABELS, instruction="Classify the review.", output_format="Answer positive or negative.")


def _run(task: Task, tmp_path: Path, *, budget: int | None = 300, calibration: str = "none", seed: int = 0,
         **knobs: Any) -> tuple[Any, list[dict[str, Any]], BiasedModel]:
    model = BiasedModel()
    result = run_optimization(task, Auto(**knobs), task_model=model, seed=seed, run_root=tmp_path, progress=False,
                              budget=None if budget is None else Budget(task_calls=budget), calibration=calibration)
    events_path = Path(result.run_dir or "") / "events.jsonl"
    events = [json.loads(line) for line in events_path.read_text().splitlines()] if events_path.exists() else []
    return result, events, model


def _ctx(task: Task, model: Any) -> tuple[OptimizationContext, OptimizationState]:
    metered = MeteredModel(model, meter=BudgetMeter())
    ctx = OptimizationContext(task, Evaluator(task, metered), metered, random.Random(0), Prompt(task.instruction),
                              lambda cand: None)
    state = OptimizationState()
    ctx.new_candidate(state, ctx.seed_prompt, parent=None, origin="seed")
    return ctx, state


# -- the pool -------------------------------------------------------------------------------------------------------
def test_balanced_demos_take_turns_between_labels() -> None:
    train = _task().train
    picked = balanced_demos(train, LABELS, 6, random.Random(3))
    targets = [train[i].target for i in picked]
    assert len(set(picked)) == 6
    assert all(a != b for a, b in itertools.pairwise(targets))  # alternating labels
    assert Counter(targets) == {"positive": 3, "negative": 3}


def test_bootstrapped_demos_prefer_examples_the_seed_gets_right_and_stay_balanced() -> None:
    task = _task()
    model = BiasedModel()
    ctx, _ = _ctx(task, model)
    judge = SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train)
    picked, correct = bootstrapped_demos(task.train, LABELS, 4, judge, random.Random(0), max_judged=10)
    # the biased seed prompt answers 'positive' to everything: only positive examples are right, so the set is
    # topped up with negatives to stay balanced
    assert len(judge.verdicts) == 10 and model.scored == 10
    assert Counter(task.train[i].target for i in picked) == {"positive": 2, "negative": 2}
    assert correct == 2 and all(task.train[i].target == "positive" for i in picked[:2])


def test_demo_sets_are_zero_shot_then_labeled_then_bootstrapped_without_repeats() -> None:
    task = _task()
    ctx, _ = _ctx(task, BiasedModel())
    judge = SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train)
    sets = demo_sets(task.train, LABELS, (2, 4), 1, judge, random.Random(0), max_judged=8)
    assert [s.kind for s in sets] == ["zero-shot", "labeled", "labeled", "bootstrapped"]
    assert [len(s.demos) for s in sets] == [0, 2, 4, 4]


def test_stratified_order_keeps_every_prefix_near_the_label_mix() -> None:
    examples = [Example(f"x{i}", "a" if i < 30 else "b") for i in range(40)]  # 3:1
    order = stratified_order(examples, ("a", "b"), random.Random(1))
    assert sorted(order) == list(range(40))
    for n in (4, 8, 12, 20):
        assert sum(examples[i].target == "b" for i in order[:n]) == n // 4


# -- the race -------------------------------------------------------------------------------------------------------
def test_auto_finds_the_calibrated_prompt_and_beats_the_biased_seed(tmp_path: Path) -> None:
    task = _task()
    result, events, _ = _run(task, tmp_path)
    assert result.seed_test_score == pytest.approx(0.5)  # the lean makes the seed say 'positive' to everything
    assert result.test_score == pytest.approx(1.0)
    assert result.best_prompt.calibration is not None
    assert result.test_comparison["significant"]
    assert result.spend["by_role"]["task"] <= 300
    rungs = [e for e in events if e["event"] == "rung"]
    assert len(rungs) == result.steps >= 3
    assert [e["size"] for e in rungs] == sorted(e["size"] for e in rungs)
    for e in rungs[:-1]:  # each rung keeps the best half or fewer (rungs planned on one slice cut at once), ≥ 2
        kept = [a for a in e["arms"] if a["kept"]]
        assert 2 <= len(kept) <= -(-len(e["arms"]) // 2)
        assert min(a["score"] for a in kept) >= max(a["score"] for a in e["arms"] if not a["kept"])
    assert rungs[-1]["size"] == len(task.dev)  # the budget pays for the finalists' whole dev split


def test_the_finalists_dev_scores_are_the_race_s_own(tmp_path: Path) -> None:
    task = _task()
    result, _, _ = _run(task, tmp_path)
    # finalization scores on dev only the seed (always a finalist) and the one pruned arm among the top three
    assert result.final_spend["calls"] <= 2 * len(task.dev) + 2 * len(task.test)


def test_calibration_arms_cost_no_more_calls_than_their_prompt(tmp_path: Path) -> None:
    task = _task()
    _, events, _ = _run(task, tmp_path, budget=None)
    race = next(e for e in events if e["event"] == "race")
    assert race["arms"] == 3 * race["bases"]
    rungs = [e for e in events if e["event"] == "rung"]
    assert {a["calibration"] for a in rungs[0]["arms"]} == {"none", "contextual", "batch"}


def test_without_a_budget_the_race_ends_on_the_whole_dev_split(tmp_path: Path) -> None:
    task = _task(n_dev=24)
    result, events, _ = _run(task, tmp_path, budget=None)
    assert [e for e in events if e["event"] == "rung"][-1]["size"] == 24
    assert result.best_dev_score == pytest.approx(1.0)


def test_a_small_budget_trims_the_pool_before_any_proposal_is_paid_for(tmp_path: Path) -> None:
    task = _task()
    _, events, _ = _run(task, tmp_path, budget=60)
    pool = next(e for e in events if e["event"] == "pool")
    assert pool["reason"].startswith("trimmed")
    assert pool["instructions"] * pool["demo_sets"] < 4 * 4
    race = next(e for e in events if e["event"] == "race")
    assert race["planned_calls"] <= race["calls_left"]


def test_the_run_s_calibration_is_the_only_one_raced(tmp_path: Path) -> None:
    task = _task()
    result, events, _ = _run(task, tmp_path, calibration="contextual")
    rungs = [e for e in events if e["event"] == "rung"]
    assert {a["calibration"] for e in rungs for a in e["arms"]} == {"contextual"}
    assert result.best_prompt.calibration is not None and result.best_prompt.calibration.method == "contextual"


def test_the_seed_stays_the_seed_as_written(tmp_path: Path) -> None:
    task = _task()
    result, _, _ = _run(task, tmp_path, num_instructions=1, demo_sizes="", bootstrapped_sets=0)
    # only the seed text: its calibrated forms are candidates of their own, the seed candidate stays uncalibrated
    assert result.seed_prompt.calibration is None
    assert result.best_prompt.instruction == task.instruction and result.best_prompt.calibration is not None


def test_a_generation_task_races_instructions_and_demos_only(tmp_path: Path) -> None:
    task = Task("echo", tuple(Example(f"word{i}", f"word{i}") for i in range(12)),
                tuple(Example(f"dev{i}", f"dev{i}") for i in range(16)), tuple(Example(f"t{i}", f"t{i}")
                                                                               for i in range(4)),
                metric="exact_match", instruction="Repeat the input.")
    result, events, _ = _run(task, tmp_path, budget=200, demo_sizes="2", min_slice=4)
    assert next(e for e in events if e["event"] == "race")["calibrations"] == ["none"]
    assert result.best_prompt.calibration is None


def test_knobs_are_checked() -> None:
    with pytest.raises(ConfigError, match="demo_sizes"):
        Auto(demo_sizes="four")
    with pytest.raises(ConfigError, match="calibrations"):
        Auto(calibrations="none,platt")
    with pytest.raises(ConfigError, match="eta"):
        Auto(eta=1)
    assert get_method("auto").from_options({"demo_sizes": "2,4", "eta": "3"}).sizes() == (2, 4)


def test_the_race_score_is_the_method_s_ranking() -> None:
    assert Auto.rank_key == RACE_KEY
