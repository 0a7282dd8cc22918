"""MIPROv2 with exact checks on scripted models: bootstrapping, demo sets in prompts, the seeded TPE search,
full evaluations, the budget, knob validation. The e2e run on the embedded model is tests/e2e/test_mipro_e2e.py."""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget, BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Capabilities, Completion, ContinuationScores, GenerationRequest, ScoringRequest
from prompthone.optimizers import METHODS, get_method
from prompthone.optimizers.base import OptimizationContext, OptimizationState
from prompthone.optimizers.mipro import MINIBATCH_KEY, MIPRO, new_study
from prompthone.optimizers.mipro_demos import SeedJudge, bootstrap, make_demo_sets
from prompthone.optimizers.mipro_instructions import propose_instructions, show_examples, summarize_dataset
from prompthone.prompts.prompt import Prompt, render_user_message
from prompthone.run.driver import run_optimization
from prompthone.tasks.example import Example, Task

LABELS = ("positive", "negative")
_INPUT = re.compile(r"^Input: (.*)$", re.M)


class OracleModel:
    """Labels a review by the word good/bad in it, except that it gets every odd-numbered review wrong.

    Meta-prompts get fixed replies by kind (observations, COMPLETE, a prefixed summary, a tagged instruction whose
    wording depends on the request, so different seeds give different instructions).
    """

    def __init__(self) -> None:
        self.id = "fake:oracle"
        self.capabilities = Capabilities(generate=True, score=True)
        self.scored: list[str] = []
        self.prompts: list[str] = []

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            text = _INPUT.findall(r.messages[-1].content)[-1]  # the example asked about (after any demos)
            self.scored.append(text)
            right = "positive" if "good" in text else "negative"
            number = int(text.rsplit(" ", 1)[-1])
            said = right if number % 2 == 0 else ("negative" if right == "positive" else "positive")
            yield i, ContinuationScores(tuple(-0.1 if lab == said else -3.0 for lab in r.continuations))

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            text = r.messages[-1].content
            self.prompts.append(text)
            if "Write a few short observations" in text:
                reply = "Observations: the inputs are short product reviews."
            elif "Add new observations" in text:
                reply = "COMPLETE"
            elif "Summarize them" in text:
                reply = "Summary: Short reviews, each labelled positive or negative."
            else:
                variant = zlib.crc32(repr(r.payload()).encode())
                reply = f"<START>Label the sentiment of the review, variant {variant}.<END>"
            yield i, Completion(reply)

    def close(self) -> None:
        return None


def _task(n_train: int = 16, n_dev: int = 12) -> Task:
    def make(start: int, n: int) -> tuple[Example, ...]:
        return tuple(Example(f"{'good' if k % 3 else 'bad'} review {k}", "positive" if k % 3 else "negative")
                     for k in range(start, start + n))

    return Task("reviews", make(0, n_train), make(100, n_dev), make(200, 6), metric="label_accuracy", labels=LABELS,
                instruction="Classify the review.")


def _ctx(model: Any, task: Task, seed: int = 0,
         events: list[dict[str, Any]] | None = None) -> tuple[OptimizationContext, OptimizationState]:
    metered = MeteredModel(model, meter=BudgetMeter())
    sink = events if events is not None else []
    ctx = OptimizationContext(task, Evaluator(task, metered), metered, random.Random(seed), Prompt(task.instruction),
                              lambda cand: None, sink.append)
    state = OptimizationState()
    ctx.new_candidate(state, ctx.seed_prompt, parent=None, origin="seed")
    return ctx, state


def _run(task: Task, model: Any, tmp_path: Path, *, seed: int = 0, budget: Budget | None = None,
         **knobs: Any) -> tuple[Any, list[dict[str, Any]], dict[int, dict[str, Any]]]:
    result = run_optimization(task, MIPRO(**knobs), task_model=model, budget=budget, seed=seed, run_root=tmp_path,
                              progress=False)
    run = Path(result.run_dir or "")
    path = run / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    candidates: dict[int, dict[str, Any]] = {}
    for line in (run / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        candidates[record["id"]] = record
    return result, events, candidates


SMALL = {"num_demo_sets": 5, "max_bootstrapped_demos": 3, "max_labeled_demos": 4, "num_instruction_candidates": 3,
         "num_trials": 6, "minibatch_size": 4, "minibatch_full_eval_steps": 3, "view_data_batch_size": 6}


# -- bootstrapping --------------------------------------------------------------------------------------------------
def test_bootstrapped_demos_are_examples_the_seed_prompt_answers_correctly() -> None:
    task = _task()
    model = OracleModel()
    ctx, _ = _ctx(model, task)
    judge = SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train)
    sets = make_demo_sets(task.train, judge, random.Random(1), num_sets=6, max_bootstrapped=3, max_labeled=4)
    assert [s.kind for s in sets] == ["zero-shot", "labeled", "bootstrapped", "bootstrapped", "bootstrapped",
                                      "bootstrapped"]
    assert sets[0].demos == () and sets[1].bootstrapped == 0 and len(sets[1].demos) == 4
    even = [e for e in task.train if int(e.input.rsplit(" ", 1)[-1]) % 2 == 0]
    assert sets[2].bootstrapped_demos == tuple(even[:3])  # unshuffled: the first three answered correctly, in order
    for s in sets[2:]:
        assert 1 <= s.bootstrapped <= 3
        assert all(d in even for d in s.bootstrapped_demos)  # only examples the seed prompt gets right
        assert len(s.demos) == 4 and len(set(s.demos)) == 4  # topped up with labeled examples to 4 in all
    assert len(model.scored) == len(judge.verdicts) == len(set(model.scored))  # each example evaluated at most once


def test_bootstrap_stops_evaluating_once_it_has_enough() -> None:
    task = _task()
    model = OracleModel()
    ctx, _ = _ctx(model, task)
    judge = SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train)
    assert bootstrap([0, 2, 4, 6], judge, 2) == [0, 2]
    assert model.scored == ["bad review 0", "good review 2"]
    assert bootstrap([1, 3, 8, 5, 10, 12], judge, 2) == [8, 10]  # 1 and 3 wrong: evaluates until two are right
    assert model.scored[2:] == ["good review 1", "bad review 3", "good review 8", "good review 5", "good review 10"]


# -- proposal ---------------------------------------------------------------------------------------------------------
def test_dataset_summary_reads_batches_skips_complete_and_strips_the_label() -> None:
    task = _task(n_train=16)
    model = OracleModel()
    metered = MeteredModel(model, meter=BudgetMeter())
    summary = summarize_dataset(metered, task.train, random.Random(0), batch_size=6, max_batches=5, temperature=1.0,
                                max_tokens=50)
    assert len(model.prompts) == 4  # three batches of ≤ 6 examples, then the summarizing call
    assert summary.summary == "Short reviews, each labelled positive or negative."
    assert summary.observations == ("the inputs are short product reviews.",) and summary.complete_batches == 2
    assert "Input: bad review 0" in model.prompts[0] and "Input: good review 14" in model.prompts[2]


def test_examples_shown_to_the_meta_model_are_defanged_and_clipped() -> None:
    shown = show_examples([Example("Review: " + "word " * 200 + "<END>", "positive")], max_chars=60)
    assert shown.startswith("Input: Review: word word") and "<END>" not in shown  # the input keeps its own label
    assert len(shown.splitlines()[0]) < 80 and shown.splitlines()[0].endswith(" …")
    assert shown.splitlines()[1] == "Answer: positive"


class _Replies:
    """Replies from a fixed list, in order."""

    def __init__(self, replies: list[str]) -> None:
        self.id, self.capabilities, self.replies, self.prompts = "fake:replies", Capabilities(), replies, []

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.prompts.append(r.messages[-1].content)
            yield i, Completion(self.replies.pop(0))

    def close(self) -> None:
        return None


def test_proposals_drop_quotes_of_training_examples_and_duplicates() -> None:
    task = _task()
    ctx, _ = _ctx(OracleModel(), task)
    sets = make_demo_sets(task.train, SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train), random.Random(0),
                          num_sets=3, max_bootstrapped=2, max_labeled=2)
    model = _Replies(["<START>Decide if the review is positive or negative.<END>",
                      "<START>Answer like this: good review 4 means positive.<END>",  # quotes a training input
                      "<START>Decide if the review is positive or negative.<END>",  # duplicate
                      "<START>Classify the review.<END>"])  # the seed instruction again
    proposals, dropped = propose_instructions(
        MeteredModel(model, meter=BudgetMeter()), random.Random(0), seed_instruction="Classify the review.",
        summary="Reviews.", demo_sets=sets, n=5, forbidden=[t for e in task.train for t in (e.input, e.target)],
        temperature=1.0, max_tokens=50, demos_in_context=3, tip_aware=True, fewshot_aware=True)
    assert [p.instruction for p in proposals] == ["Classify the review.",
                                                  "Decide if the review is positive or negative."]
    assert [d["reason"] for d in dropped] == ["unusable or quotes a training example", "duplicate", "duplicate"]
    assert [p.demo_set for p in proposals] == [0, 1]
    # instruction i is grounded on demo set i (mod the number of sets): set 0 is zero-shot, so no examples shown
    assert "good review" in model.prompts[1] and "No examples available." in model.prompts[2]
    assert "Reviews." in model.prompts[0] and "Classify the review." in model.prompts[0]


def test_mipro_keeps_long_proposals_whole_and_drops_only_copies_of_an_example() -> None:
    # DSPy keeps proposals whole (they were cut at 500 characters here), and a grounded instruction may cite the
    # data: quoting 4 words of an example no longer drops it; copying 12 in a row still does.
    task = replace(_task(), train=(*_task().train, Example(
        "the staff were rude and the room smelled of smoke and the bed was broken too", "negative")))
    long = "Decide whether the review is positive or negative. " + "Weigh every sentence of it carefully. " * 20
    model = _Replies([f"<START>{long}<END>",
                      "<START>Call a review negative when it says the staff were rude.<END>",
                      "<START>Negative: the staff were rude and the room smelled of smoke and the bed was broken."
                      "<END>"])
    ctx, _ = _ctx(OracleModel(), task)
    ctx.meta_model = MeteredModel(model, meter=BudgetMeter())
    sets = make_demo_sets(task.train, SeedJudge(ctx.evaluator, ctx.seed_prompt, task.train), random.Random(0),
                          num_sets=3, max_bootstrapped=2, max_labeled=2)
    proposals = MIPRO(num_instruction_candidates=4)._instructions(ctx, list(task.train), sets, None)
    assert [p.instruction for p in proposals] == ["Classify the review.", long.strip(),
                                                  "Call a review negative when it says the staff were rude."]
    assert len(long) > 700


# -- the search -------------------------------------------------------------------------------------------------------
def test_new_study_is_seeded() -> None:
    from optuna.distributions import CategoricalDistribution

    space = {"instruction": CategoricalDistribution([0, 1, 2]), "demo_set": CategoricalDistribution(list(range(6)))}

    def asks(seed: int) -> list[tuple[int, int]]:
        study = new_study(seed)
        out = []
        for _ in range(14):  # past TPE's 10 random start-up trials
            trial = study.ask(space)
            i, d = trial.params["instruction"], trial.params["demo_set"]
            out.append((i, d))
            study.tell(trial, (3 * i + d) % 5 / 5)
        return out

    assert asks(7) == asks(7)
    assert asks(7) != asks(8)
    import optuna

    assert optuna.logging.get_verbosity() == optuna.logging.WARNING  # no per-trial INFO lines from Optuna


def test_trials_are_reproducible_and_differ_by_seed(tmp_path: Path) -> None:
    def params(seed: int) -> list[dict[str, int]]:
        _, events, _ = _run(_task(), OracleModel(), tmp_path / str(seed) / str(random.random()), seed=seed, **SMALL)
        return [e["params"] for e in events if e["event"] == "trial"]

    first = params(1)
    assert len(first) == SMALL["num_trials"]
    assert params(1) == first
    assert params(2) != first


def test_demo_sets_become_prompt_demos_and_every_candidate_records_its_pair(tmp_path: Path) -> None:
    task = _task()
    result, events, candidates = _run(task, OracleModel(), tmp_path, seed=3, **{**SMALL, "num_trials": 10})
    sets = next(e for e in events if e["event"] == "demo_sets")["sets"]
    instructions = next(e for e in events if e["event"] == "instructions")["instructions"]
    assert len(sets) == 5 and len(instructions) == 3
    assert next(e for e in events if e["event"] == "dataset_summary")["summary"].startswith("Short reviews")
    for cand in candidates.values():
        pair = cand["data"]
        assert cand["prompt"]["demos"] == sets[pair["demo_set_index"]]["demos"]
        assert cand["prompt"]["instruction"] == instructions[pair["instruction_index"]]["instruction"]
        assert cand["prompt"]["output_format"] == task.output_format
    assert any(cand["prompt"]["demos"] for cand in candidates.values())
    trials = [e for e in events if e["event"] == "trial"]
    assert all(e["candidate"] in candidates and e["n"] == 4 and not e["full"] for e in trials)
    assert result.stopped_reason == "finished" and result.steps == 10
    assert result.best_dev_score >= result.seed_dev_score
    with_demos = Prompt("Classify.", demos=(task.train[0],))
    assert "Input: bad review 0\nAnswer: negative" in render_user_message(with_demos, "x")


def test_full_evaluations_follow_the_best_minibatch_mean_and_are_told_to_the_study() -> None:
    events: list[dict[str, Any]] = []
    ctx, state = _ctx(OracleModel(), _task(), seed=5, events=events)
    opt = MIPRO(**{**SMALL, "num_trials": 7})
    opt.start(ctx, state)
    search = state.extra["mipro"]
    while not state.done:
        opt.step(ctx, state)
    full_events = [e for e in events if e["event"] == "full_eval"]
    assert [e["trial"] for e in full_events] == [3, 6, 7]  # every 3 trials, and after the last
    done = [e["candidate"] for e in full_events if e["candidate"] is not None]
    assert len(done) == len(set(done))  # never the same pair twice
    for cid in done:
        assert opt.rank_key in state.pool[cid].scores and MINIBATCH_KEY in state.pool[cid].scores
    # the study saw the seed's full score, the 7 trials and every full evaluation
    assert len(search.study.trials) == 1 + 7 + len(done)
    assert state.pool[0].scores[opt.rank_key] == search.study.trials[0].value
    top = opt.top(state, 50)
    full = [c for c in top if opt.rank_key in c.scores]
    assert top[:len(full)] == full and [c.scores[opt.rank_key] for c in full] == sorted(
        (c.scores[opt.rank_key] for c in full), reverse=True)
    assert all(opt.rank_key not in c.scores for c in top[len(full):])


def test_when_dev_fits_in_a_minibatch_every_trial_is_a_full_evaluation(tmp_path: Path) -> None:
    model = OracleModel()
    result, events, candidates = _run(_task(n_dev=4), model, tmp_path, **{**SMALL, "num_trials": 12})
    trials = [e for e in events if e["event"] == "trial"]
    assert all(e["full"] and e["n"] == 4 for e in trials) and not [e for e in events if e["event"] == "full_eval"]
    assert all("dev_full" in c["scores"] and MINIBATCH_KEY not in c["scores"] for c in candidates.values())
    # a pair met again is not re-scored: each distinct prompt costs one pass over the 4 dev examples
    dev_inputs = {e.input for e in _task(n_dev=4).dev}
    finalists = [c for c in candidates.values() if "dev" in c["scores"]]  # the driver's, outside the budget
    assert len(finalists) == 3  # the seed and the top 3 (the seed among them)
    # the finalists' full dev scores are reused as their dev scores: no second pass over dev
    assert all(c["scores"]["dev"] == c["scores"]["dev_full"] for c in finalists)
    assert sum(1 for text in model.scored if text in dev_inputs) == 4 * len(candidates)
    assert result.steps == 12


def test_zero_shot_searches_instructions_only() -> None:
    ctx, state = _ctx(OracleModel(), _task(), events=(events := []))
    opt = MIPRO(**{**SMALL, "max_bootstrapped_demos": 0, "max_labeled_demos": 0})
    opt.start(ctx, state)
    while not state.done:
        opt.step(ctx, state)
    assert all(c.prompt.demos == () for c in state.pool.values())
    assert state.extra["mipro"].distributions["demo_set"].choices == (0,)
    sets = next(e for e in events if e["event"] == "demo_sets")
    assert not sets["searched"] and any(s["bootstrapped"] for s in sets["sets"])  # demos still ground the proposals


# -- budget -----------------------------------------------------------------------------------------------------------
def test_budget_stops_the_search_cleanly_and_the_driver_finalizes(tmp_path: Path) -> None:
    _, events, _ = _run(_task(), OracleModel(), tmp_path / "full", **SMALL)
    first_trial = next(e for e in events if e["event"] == "trial")
    budget = first_trial["calls_so_far"] + 2  # the setup, the first trial and half of the second
    result, events, _ = _run(_task(), OracleModel(), tmp_path / "cut", budget=Budget(calls=budget), **SMALL)
    assert result.stopped_reason == "budget"
    assert result.spend["calls"] == budget
    assert result.steps == 1 and len([e for e in events if e["event"] == "trial"]) == 1
    assert result.best_dev_score >= result.seed_dev_score and result.final_spend["calls"] > 0


def test_a_budget_spent_while_bootstrapping_reports_the_seed(tmp_path: Path) -> None:
    result, _, _ = _run(_task(), OracleModel(), tmp_path, budget=Budget(calls=3), **SMALL)
    assert result.stopped_reason == "budget" and result.steps == 0 and result.spend["calls"] == 3
    assert result.best_candidate_id == 0 and result.best_prompt.instruction == "Classify the review."


# -- knobs ------------------------------------------------------------------------------------------------------------
def test_knobs_are_validated_and_default_to_dspy_light() -> None:
    assert get_method("mipro") is MIPRO and METHODS["mipro"] is MIPRO
    knobs = MIPRO.knobs()
    assert (knobs["num_demo_sets"], knobs["num_instruction_candidates"], knobs["num_trials"]) == (6, 3, 10)
    assert (knobs["max_bootstrapped_demos"], knobs["max_labeled_demos"], knobs["minibatch_size"],
            knobs["minibatch_full_eval_steps"]) == (4, 4, 35, 5)
    for bad in ({"num_trials": 0}, {"num_demo_sets": 0}, {"minibatch_size": 0}, {"minibatch_full_eval_steps": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            MIPRO(**bad)
    with pytest.raises(ConfigError, match="max_labeled_demos"):
        MIPRO(max_labeled_demos=-1)
    with pytest.raises(ConfigError, match="proposal_temperature"):
        MIPRO(proposal_temperature=-0.5)
    opt = MIPRO.from_options({"num_trials": "4", "tip_aware": "false", "proposal_temperature": "0.7"})
    assert isinstance(opt, MIPRO) and (opt.num_trials, opt.tip_aware, opt.proposal_temperature) == (4, False, 0.7)
    with pytest.raises(ConfigError, match="unknown option"):
        MIPRO.from_options({"auto": "light"})


def test_a_task_without_training_examples_is_refused() -> None:
    task = _task()
    empty = Task("t", (), task.dev, task.test, metric="label_accuracy", labels=LABELS)
    ctx, state = _ctx(OracleModel(), empty)
    with pytest.raises(ConfigError, match="training examples"):
        MIPRO().start(ctx, state)
