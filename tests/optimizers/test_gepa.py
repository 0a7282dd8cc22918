"""GEPA with a scripted fake model: acceptance, perfect-minibatch skip, minibatch cycling, merge, metric calls.

The fake task model answers right or wrong depending on keywords in the prompt, so scores are exact; the fake
meta model replies from a script. Never evidence that GEPA works on a real model: the e2e test does that.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget, BudgetMeter
from prompthone.evaluation.evaluator import Evaluator, ExampleResult
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)
from prompthone.optimizers import METHODS, get_method
from prompthone.optimizers.base import OptimizationContext, OptimizationState
from prompthone.optimizers.gepa import GEPA, _with_components, format_feedback
from prompthone.optimizers.gepa_parts import (
    find_merge_triplet,
    has_desirable_component,
    merge_components,
    merge_subsample,
    new_sampler_state,
    next_minibatch,
)
from prompthone.prompts.prompt import Prompt
from prompthone.run.driver import run_optimization
from prompthone.tasks.example import Example, Task

_CASE = re.compile(r"Input: case (\d+):")


class KeywordModel:
    """Task model: right on case N when the prompt says ALWAYS-RIGHT, or EVEN-RIGHT/ODD-RIGHT and N matches.

    Meta model: replies from `script` in order ("nothing useful" once it runs out). Counts both kinds of call.
    """

    def __init__(self, script: Sequence[str] = ()) -> None:
        self.id = "fake:keyword"
        self.capabilities = Capabilities(generate=True, score=True, prefill=True)
        self.script = list(script)
        self.score_calls = 0
        self.generate_calls = 0
        self.meta_prompts: list[str] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.generate_calls += 1
            self.meta_prompts.append(r.messages[-1].content)
            yield i, Completion(self.script.pop(0) if self.script else "nothing useful", 10, 5)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.score_calls += 1
            text = " ".join([*(m.content for m in r.messages), r.prefill])
            n = int(_CASE.findall(text)[-1])
            right = ("ALWAYS-RIGHT" in text or ("EVEN-RIGHT" in text and n % 2 == 0)
                     or ("ODD-RIGHT" in text and n % 2 == 1))
            gold = "yes" if n % 2 == 0 else "no"
            said = gold if right else ("no" if gold == "yes" else "yes")
            yield i, ContinuationScores(tuple(-0.1 if c == said else -3.0 for c in r.continuations), 10)

    def close(self) -> None:
        return None


def _task(n_train: int = 9, n_dev: int = 6) -> Task:
    examples = [Example(f"case {i}: the weather report for today", "yes" if i % 2 == 0 else "no")
                for i in range(n_train + n_dev)]
    return Task("t", tuple(examples[:n_train]), tuple(examples[n_train:]), (), metric="label_accuracy",
                labels=("yes", "no"), instruction="Answer the question.")


def _setup(script: Sequence[str] = (), *, seed_instruction: str = "Answer the question.", n_train: int = 9,
           **knobs: object) -> tuple[GEPA, OptimizationContext, OptimizationState, KeywordModel, list[dict]]:
    task = _task(n_train)
    model = KeywordModel(script)
    metered = MeteredModel(model, meter=BudgetMeter())
    events: list[dict] = []
    seed = Prompt(seed_instruction)
    ctx = OptimizationContext(task, Evaluator(task, metered), metered, random.Random(0), seed, lambda c: None,
                              events.append)
    state = OptimizationState()
    ctx.new_candidate(state, seed, parent=None, origin="seed")
    options: dict[str, object] = {"max_metric_calls": 1000, **knobs}
    optimizer = GEPA(**options)  # type: ignore[arg-type]
    optimizer.start(ctx, state)
    return optimizer, ctx, state, model, events


def _reflections(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "reflection"]


def test_the_seed_is_scored_on_the_pareto_set_first() -> None:
    _, _, state, model, events = _setup(pareto_set_size=4)
    seed = state.pool[0]
    assert len(state.extra["pareto_ids"]) == 4 and state.extra["pareto_split"] == "dev"
    assert seed.data["pareto_scores"] == [0.0] * 4 and seed.scores["pareto"] == 0.0
    assert "dev" not in seed.scores  # a sample of dev is not the dev score
    assert state.extra["metric_calls"] == model.score_calls == 4
    assert events[0]["event"] == "pareto_eval" and events[0]["candidate"] == 0
    _, _, whole, _, _ = _setup()
    assert whole.pool[0].scores["dev"] == whole.pool[0].scores["pareto"]  # whole dev split: stored as dev too


def test_a_child_is_accepted_only_on_strict_minibatch_improvement() -> None:
    optimizer, ctx, state, _, events = _setup(["<START>Another plain instruction for this task.<END>",
                                               "<START>Reply ALWAYS-RIGHT to every case.<END>"])
    optimizer.step(ctx, state)
    first = _reflections(events)[-1]
    assert first["outcome"] == "rejected" and not first["accepted"]
    assert first["parent_sum"] == first["child_sum"] == 0.0  # equal is not better
    assert list(state.pool) == [0]  # rejected children never join the pool
    optimizer.step(ctx, state)
    second = _reflections(events)[-1]
    assert first["components"] == ["instruction"] and second["components"] == ["system"]  # round robin
    assert second["outcome"] == "accepted" and second["accepted"] and second["parent"] == 0
    assert second["child_sum"] == 3.0 > second["parent_sum"] and len(second["minibatch"]) == 3
    child = state.pool[second["child"]]
    assert child.parent == 0 and child.origin == "reflection" and child.data["parents"] == [0]
    assert child.data["pareto_scores"] == [1.0] * len(ctx.task.dev) and child.scores["pareto"] == 1.0
    assert state.frontier == [child.id]  # the seed is dominated now
    assert optimizer.top(state, 1)[0].id == child.id
    assert child.prompt.system == "Reply ALWAYS-RIGHT to every case."
    assert child.prompt.instruction == ctx.seed_prompt.instruction  # one component per iteration
    assert child.prompt.output_format == ctx.seed_prompt.output_format  # never a component


def test_a_perfect_minibatch_is_not_reflected_on() -> None:
    optimizer, ctx, state, model, events = _setup(["<START>Something new to try out.<END>"],
                                                  seed_instruction="ALWAYS-RIGHT.")
    optimizer.step(ctx, state)
    event = _reflections(events)[-1]
    assert event["outcome"] == "perfect" and event["parent_scores"] == [1.0, 1.0, 1.0]
    assert model.generate_calls == 0 and "child_scores" not in event
    optimizer, ctx, state, model, events = _setup(["<START>Something new to try out.<END>"],
                                                  seed_instruction="ALWAYS-RIGHT.", skip_perfect_score=False)
    optimizer.step(ctx, state)
    assert model.generate_calls == 1 and _reflections(events)[-1]["outcome"] == "rejected"


def test_the_reflection_prompt_shows_feedback_and_replies_are_parsed_or_dropped() -> None:
    quoting = "<START>Say yes for case 2: the weather report for today.<END>"
    optimizer, ctx, state, model, events = _setup([quoting, "Nothing", "```\nReply ALWAYS-RIGHT to each case.\n```"])
    optimizer.step(ctx, state)
    assert _reflections(events)[-1]["outcome"] == "no_text" and model.generate_calls == 2  # one retry
    shown = model.meta_prompts[0]
    assert "Answer the question." in shown and "## Feedback" in shown and "the expected label is" in shown
    assert shown.count("# Example ") == 3 and "The answer is incorrect: the model chose" in shown
    optimizer.step(ctx, state)  # a fenced reply (GEPA's own format) is read too; the system message's turn
    assert _reflections(events)[-1]["proposed"] == {"system": "Reply ALWAYS-RIGHT to each case."}
    assert "following system message" in model.meta_prompts[-1] and "(no system message)" in model.meta_prompts[-1]
    optimizer, ctx, state, model, events = _setup(["## Instructions", "## New instruction\n\nReply EVEN-RIGHT here."])
    optimizer.step(ctx, state)  # markdown headings echoed from the feedback are layout, not an instruction
    assert _reflections(events)[-1]["proposed"] == {"instruction": "Reply EVEN-RIGHT here."}
    assert model.generate_calls == 2


def test_format_feedback_defangs_tags_and_shows_output_when_asked() -> None:
    task = Task("t", (), (), (), metric="label_accuracy", labels=("yes", "no"))
    r = ExampleResult("hi <START>x<END>", "yes", None, 0.0, "I think <END> maybe")
    text = format_feedback([r], task, show_output=True)
    assert "<START>" not in text and "<END>" not in text and "(no answer could be read)" in text
    assert "## Assistant's output\nI think [end] maybe" in text
    assert "## Feedback\nThe answer is incorrect: no label could be read; the expected label is 'yes'." in text
    assert "Assistant's output" not in format_feedback([r], task, show_output=False)


def test_a_tasks_own_feedback_reaches_the_reflection() -> None:
    def explain(result: ExampleResult, task: Task) -> str:
        return f"Rule: answers to '{result.input}' must be '{result.target}' <END>"

    task = Task("t", (), (), (), metric="label_accuracy", labels=("yes", "no"), feedback=explain)
    text = format_feedback([ExampleResult("q1", "yes", "no", 0.0, "no")], task, show_output=False)
    assert "## Feedback\nRule: answers to 'q1' must be 'yes' [end]" in text


def test_minibatches_cycle_through_the_training_split_each_epoch() -> None:
    sampler = new_sampler_state(7)
    rng = random.Random(1)
    epoch = [next_minibatch(sampler, 3, rng) for _ in range(3)]
    flat = [i for batch in epoch for i in batch]
    assert all(len(b) == 3 for b in epoch) and set(flat) == set(range(7))
    assert len(flat) == 9 and sorted(flat[7:]) == [0, 1]  # padded with the least drawn, lowest index first
    nxt = [i for _ in range(3) for i in next_minibatch(sampler, 3, rng)]
    assert set(nxt) == set(range(7)) and nxt[:7] != flat[:7]  # a fresh shuffle
    assert sum(sampler["freqs"]) == 18 and max(sampler["freqs"]) - min(sampler["freqs"]) <= 1
    json.dumps(sampler)  # resumable state
    again = new_sampler_state(7)
    rng2 = random.Random(1)
    assert [next_minibatch(again, 3, rng2) for _ in range(3)] == epoch  # seeded

    optimizer, ctx, state, _, events = _setup(n_train=6)
    for _ in range(2):
        optimizer.step(ctx, state)
    seen = [i for e in _reflections(events) for i in e["minibatch"]]
    assert sorted(seen) == list(range(6))


def test_metric_calls_count_every_example_scored_and_stop_the_run() -> None:
    script = ["<START>Reply ALWAYS-RIGHT to every case.<END>"] + [f"<START>Plain rewrite number {i} here.<END>"
                                                                 for i in range(20)]
    optimizer, ctx, state, model, events = _setup(script, max_metric_calls=40, skip_perfect_score=False)
    while not state.done:
        optimizer.step(ctx, state)
    assert state.extra["metric_calls"] == model.score_calls <= 40
    # seed 6 + accepted iteration (3 + 3 + 6) + two rejected ones (3 + 3 each); a next one could need 12 > 40 - 30
    assert state.extra["metric_calls"] == 6 + 12 + 6 * 2
    assert events[-1]["metric_calls"] == state.extra["metric_calls"]
    json.dumps(state.extra)
    json.dumps([c.to_dict() for c in state.pool.values()])


def test_knobs_are_validated_and_a_stop_condition_is_required() -> None:
    with pytest.raises(ConfigError, match="minibatch_size"):
        GEPA(minibatch_size=0)
    with pytest.raises(ConfigError, match="max_metric_calls"):
        GEPA(max_metric_calls=-1)
    with pytest.raises(ConfigError, match="pareto_set_size"):
        GEPA(pareto_set_size=-2)
    knobs = GEPA.knobs()
    assert knobs["minibatch_size"] == 3 and knobs["use_merge"] is False and knobs["max_merge_invocations"] == 5
    built = GEPA.from_options({"use_merge": "true", "max_metric_calls": "120", "perfect_score": "0.9"})
    assert isinstance(built, GEPA) and built.use_merge is True and built.max_metric_calls == 120
    assert METHODS["gepa"] is GEPA and get_method("gepa") is GEPA
    with pytest.raises(ConfigError, match="stop condition"):
        _setup(max_metric_calls=0)
    with pytest.raises(ConfigError, match="cannot pay"):
        _setup(max_metric_calls=5)


def test_merge_takes_each_changed_component_and_breaks_double_changes_by_score() -> None:
    anc = {"a": "a0", "b": "b0", "c": "c0", "d": "d0"}
    first = {"a": "a1", "b": "b0", "c": "c1", "d": "d0"}
    second = {"a": "a0", "b": "b2", "c": "c2", "d": "d0"}
    merged, sources = merge_components(anc, first, second, 0.6, 0.4, random.Random(0))
    assert merged == {"a": "a1", "b": "b2", "c": "c1", "d": "d0"}
    assert sources == ["first", "second", "first", "first"]
    merged, _ = merge_components(anc, first, second, 0.4, 0.6, random.Random(0))
    assert merged["c"] == "c2"
    tie = {merge_components(anc, first, second, 0.5, 0.5, random.Random(s))[0]["c"] for s in range(20)}
    assert tie == {"c1", "c2"}  # a tie on score is broken at random
    assert has_desirable_component(anc, first, second)
    assert not has_desirable_component({"x": "0"}, {"x": "1"}, {"x": "2"})  # one component, both changed


def test_merge_triplets_need_separate_lineages_a_weaker_ancestor_and_something_to_take() -> None:
    parents = {0: [], 1: [0], 2: [0], 3: [1]}
    comps = {0: {"x": "x0", "y": "y0"}, 1: {"x": "x1", "y": "y0"}, 2: {"x": "x0", "y": "y2"},
             3: {"x": "x3", "y": "y0"}}
    agg = {0: 0.2, 1: 0.5, 2: 0.6, 3: 0.7}
    assert find_merge_triplet(random.Random(0), [2, 3], parents, agg, comps, set()) == (2, 3, 0)
    assert find_merge_triplet(random.Random(0), [1, 3], parents, agg, comps, set()) is None  # 1 is 3's ancestor
    assert find_merge_triplet(random.Random(0), [2, 3], parents, agg, comps, {(2, 3, 0)}) is None  # tried
    assert find_merge_triplet(random.Random(0), [2, 3], parents, {**agg, 0: 0.65}, comps, set()) is None
    single = {c: {"x": v["x"] if c != 2 else "x2"} for c, v in comps.items()}
    assert find_merge_triplet(random.Random(0), [2, 3], parents, agg, single, set()) is None


def test_merge_subsample_balances_where_each_parent_wins() -> None:
    first = [1.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.0]
    second = [0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.0]
    chosen = merge_subsample(first, second, 5, random.Random(0))
    assert len(chosen) == 5 and len(set(chosen)) == 5
    assert sum(1 for k in chosen if first[k] > second[k]) == 2 and sum(1 for k in chosen if second[k] > first[k]) == 2
    assert len(merge_subsample([1.0, 0.0], [0.0, 1.0], 5, random.Random(0))) == 5  # with replacement


def test_merge_in_the_loop_combines_two_specialists() -> None:
    # One lineage rewrote the instruction, the other the system message: the merge takes both.
    optimizer, ctx, state, _, events = _setup(use_merge=True)
    seed = state.pool[0]
    for prompt in (replace(seed.prompt, instruction="EVEN-RIGHT."), replace(seed.prompt, system="ODD-RIGHT.")):
        cand = ctx.new_candidate(state, prompt, parent=0, origin="reflection", data={"parents": [0]})
        assert cand is not None
        optimizer.select(ctx, state, [cand])
    assert state.extra["merge"]["due"] == 2 and state.extra["merge"]["last_found_new"]
    assert sorted(state.frontier) == [1, 2]
    made = optimizer.propose(ctx, state)
    merge = [e for e in events if e["event"] == "merge"][-1]
    assert merge["outcome"] == "accepted" and merge["pair"] == [1, 2] and merge["ancestor"] == 0
    assert merge["merged_sum"] >= max(merge["parent_sums"]) and len(merge["positions"]) == 5
    assert len(made) == 1 and made[0].origin == "merge" and made[0].data["parents"] == [1, 2]
    assert made[0].prompt.instruction == "EVEN-RIGHT." and made[0].prompt.system == "ODD-RIGHT."
    assert not _reflections(events[-1:])  # a merge iteration does no reflection
    optimizer.select(ctx, state, made)
    assert made[0].scores["pareto"] == 1.0 and state.frontier == [made[0].id]
    assert state.extra["merge"]["accepted"] == 1 and state.extra["merge"]["due"] == 1


def test_merge_with_one_component_finds_no_pair_and_reflection_goes_on() -> None:
    script = ["<START>Reply EVEN-RIGHT to every case.<END>", "<START>Reply with ODD-RIGHT now.<END>",
              "<START>A third instruction text.<END>"]
    optimizer, ctx, state, _, events = _setup(script, use_merge=True, evolve_system=False)
    for _ in range(3):
        optimizer.step(ctx, state)
    merges = [e for e in events if e["event"] == "merge"]
    assert merges and all(e["outcome"] == "no_pair" and not e["accepted"] for e in merges)
    assert len(_reflections(events)) == 3  # each iteration still reflected


def test_driver_run_writes_events_candidates_and_respects_both_budgets(tmp_path: Path) -> None:
    task = _task()
    model = KeywordModel(["<START>Reply EVEN-RIGHT to every case.<END>"] * 3)
    result = run_optimization(task, GEPA(max_metric_calls=200), task_model=model, budget=Budget(calls=30),
                              run_root=tmp_path, progress=False)
    run = Path(result.run_dir or "")
    assert result.stopped_reason == "budget" and result.spend["calls"] <= 30
    assert result.best_dev_score >= result.seed_dev_score
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert {"pareto_eval", "reflection"} <= {e["event"] for e in events}
    assert all(e["method"] == "gepa" for e in events)
    records = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    scored = [r for r in records if "pareto" in r["scores"]]
    assert scored and all(len(r["data"]["pareto_scores"]) == len(task.dev) for r in scored)


def test_round_robin_alternates_components_per_parent_and_children_continue_the_turn() -> None:
    script = ["<START>Reply EVEN-RIGHT to every case.<END>", "<START>Reply ODD-RIGHT to every case.<END>",
              "<START>Another try at the instruction.<END>"]
    optimizer, ctx, state, _, events = _setup(script, skip_perfect_score=False, pareto_set_size=6)
    for _ in range(3):
        optimizer.step(ctx, state)
    turns = [(e["parent"], e["components"], e["outcome"]) for e in _reflections(events)]
    # the seed rewrites its instruction; the child goes on with the system message, the grandchild with the
    # instruction again (EVEN-RIGHT, then ODD-RIGHT beside it, make every case right; the third try loses)
    assert turns == [(0, ["instruction"], "accepted"), (1, ["system"], "accepted"), (2, ["instruction"], "rejected")]
    assert [state.pool[c].data["next_component"] for c in (0, 1, 2)] == [1, 0, 1]
    best = state.pool[2].prompt
    assert (best.instruction, best.system) == ("Reply EVEN-RIGHT to every case.", "Reply ODD-RIGHT to every case.")


def test_the_all_selector_rewrites_every_component_and_the_system_knob_turns_it_off() -> None:
    script = ["<START>Reply EVEN-RIGHT to every case.<END>", "<START>Reply ODD-RIGHT to every case.<END>"]
    optimizer, ctx, state, model, events = _setup(script, component_selector="all")
    optimizer.step(ctx, state)
    event = _reflections(events)[-1]
    assert event["components"] == ["instruction", "system"] and model.generate_calls == 2
    assert event["proposed"] == {"instruction": "Reply EVEN-RIGHT to every case.",
                                 "system": "Reply ODD-RIGHT to every case."}
    assert event["child_sum"] == 3.0 and event["accepted"]  # EVEN-RIGHT and ODD-RIGHT together cover every case
    optimizer, ctx, state, model, events = _setup(script, evolve_system=False)
    assert optimizer.components(state.pool[0].prompt) == {"instruction": "Answer the question."}
    for _ in range(2):
        optimizer.step(ctx, state)
    assert all(e["components"] == ["instruction"] for e in _reflections(events))
    with pytest.raises(ConfigError, match="component_selector"):
        GEPA(component_selector="random")


def test_an_emptied_system_message_renders_as_none() -> None:
    assert _with_components(Prompt("x", system="s"), {"instruction": "y", "system": "  "}).system is None


def test_with_evolve_answer_prefix_the_reply_prefix_is_a_third_component() -> None:
    script = ["<START>Answer the question well.<END>", "<START>You are careful.<END>",
              "<START>ALWAYS-RIGHT: here is my answer<END>"]
    optimizer, ctx, state, model, _ = _setup(script, evolve_answer_prefix=True, component_selector="all",
                                             skip_perfect_score=False)
    assert list(optimizer.components(state.pool[0].prompt)) == ["instruction", "system", "answer_prefix"]
    made = optimizer.propose(ctx, state)
    assert "answer prefix (the text the assistant's reply starts with)" in model.meta_prompts[-1]
    assert "(no answer prefix)" in model.meta_prompts[-1]
    assert len(made) == 1 and made[0].prompt.answer_prefix == "ALWAYS-RIGHT: here is my answer"
    assert (made[0].prompt.instruction, made[0].prompt.system) == ("Answer the question well.", "You are careful.")
    assert list(GEPA().components(Prompt("x", answer_prefix="kept out"))) == ["instruction", "system"]
