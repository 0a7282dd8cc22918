"""The report's pure parts: who is seed and best, ranking keys, best-so-far, word diffs, wins and losses, spend."""

from __future__ import annotations

import dataclasses

import pytest

from prompthone.report.diff import Segment, demo_changes, prompt_diff, word_diff
from prompthone.report.scores import ScorePoint, best_so_far, compare_examples, method_best, score_points
from prompthone.report.summary import best, parents, rank_key, seed_id, spend, summary


def test_word_diff_marks_only_the_changed_words() -> None:
    assert word_diff("Classify the review.", "Label the review carefully.") == (
        Segment("delete", "Classify "), Segment("insert", "Label "), Segment("equal", "the "),
        Segment("delete", "review."), Segment("insert", "review carefully."))
    assert word_diff("same text", "same text") == (Segment("equal", "same text"),)
    assert word_diff("", "new") == (Segment("insert", "new"),)


def test_prompt_diff_covers_system_message_demos_and_settings(run_data) -> None:
    run = run_data("mipro")
    diff = prompt_diff(run.result["seed_prompt"], run.result["best_prompt"])
    assert [f.name for f in diff.fields] == ["instruction", "system message"]
    assert diff.fields[0].changed and not diff.fields[1].changed
    assert [d.status for d in diff.demos] == ["added", "added"] and diff.settings == ()
    greater = run_data("greater")
    settings = prompt_diff(greater.result["seed_prompt"], greater.result["best_prompt"]).settings
    assert settings == (("instruction position", "before", "after"), ("reasoning tokens", 0, 256))
    assert [d.status for d in demo_changes([{"input": "a", "target": "x"}, {"input": "b", "target": "y"}],
                                           [{"input": "b", "target": "y"}, {"input": "c", "target": "z"}])] == \
        ["removed", "kept", "added"]


def test_an_answer_prefix_found_is_a_setting_of_the_diff() -> None:
    diff = prompt_diff({"instruction": "a"}, {"instruction": "a", "answer_prefix": "Captain's log:"})
    assert diff.settings == (("answer prefix", "none", "Captain's log:"),)


def test_seed_best_and_rank_key_of_finished_and_running_runs(run_data) -> None:
    apo, running = run_data("apo"), run_data("running")
    assert (seed_id(apo), rank_key(apo)) == (0, "bandit")
    assert dataclasses.astuple(best(apo))[:2] == (1, True)
    top = best(running)
    assert (top.id, top.final, rank_key(running)) == (1, False, "dev_sample")
    assert "current best by 'dev_sample'" in top.how


def test_rank_key_of_an_unknown_method_is_read_from_the_steps(run_data) -> None:
    run = dataclasses.replace(run_data("gepa"), config={"method": "my-plugin"}, result=None)
    assert rank_key(run) == "dev"  # 'dev' and 'pareto' both match every step's best_score; the first seen wins
    run = dataclasses.replace(run, steps=[{"step": 1, "best_id": 2, "best_score": 0.5}])
    assert rank_key(run) == "pareto"  # no key matches: the first score key (final dev/test keys last)


def test_parents_prefer_the_recorded_list(run_data) -> None:
    gepa = run_data("gepa")
    assert [parents(gepa.candidates[i]) for i in range(4)] == [[], [0], [0], [1, 2]]
    assert parents({"parent": 5, "data": {}}) == [5] and parents({"parent": None}) == []


def test_best_so_far_and_method_best(run_data) -> None:
    points = [ScorePoint(0, 0, 0.5), ScorePoint(1, 0, 0.25), ScorePoint(2, 2, 0.75), ScorePoint(3, 3, 0.5)]
    assert best_so_far(points, 4) == [(0, 0.5), (1, 0.5), (2, 0.75), (3, 0.75), (4, 0.75)]
    gepa = run_data("gepa")
    assert method_best(gepa) == [(0, 0.75, 1), (1, 0.75, 1), (2, 0.75, 1), (3, 1.0, 3)]
    assert [(p.candidate, p.step) for p in score_points(gepa)["pareto"]] == [(0, 0), (1, 0), (2, 1), (3, 3)]
    assert list(score_points(gepa)) == ["pareto", "dev", "test"]


def test_wins_and_losses_against_the_seed(run_data) -> None:
    apo = run_data("apo")
    test = compare_examples(apo, 0, 1, "test")
    assert (test.compared, len(test.wins), len(test.losses), test.ties, test.note) == (4, 2, 1, 1, None)
    assert [(r.index, r.seed_prediction, r.best_prediction) for r in test.wins] == [
        (2, "negative", "positive"), (3, "positive", "negative")]
    assert test.losses[0].input == "Friendly staff & <b>fast</b> service." and test.losses[0].best_score == 0.0
    dev = compare_examples(apo, 0, 1, "dev")
    assert (dev.compared, len(dev.wins), len(dev.losses), dev.ties) == (4, 1, 0, 3)
    assert compare_examples(apo, 0, 0, "dev").note == "the best prompt is the seed prompt: nothing to compare"
    assert compare_examples(run_data("gepa"), 0, 3, "test").note == "per-example scores: not recorded in this run"
    assert compare_examples(run_data("mipro"), 0, 1, "test").note == (
        "the seed and the best prompt have no per-example 'test' scores recorded in this run")


def test_spend_rows_roles_and_cost(run_data) -> None:
    gepa = spend(run_data("gepa"))
    assert [r.label for r in gepa.rows] == ["search", "final scoring", "total"]
    assert gepa.rows[-1].values["calls"] == 44 and gepa.rows[-1].cost == pytest.approx(0.0127)
    assert gepa.roles == {"task": {"search": 36}, "meta": {"search": 4}, "final": {"final scoring": 4}}
    assert gepa.cost_note is None
    apo = spend(run_data("apo"))
    assert apo.rows[-1].cost is None
    assert apo.cost_note == "no prices known for llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    running = spend(run_data("running"))  # no result: the last step's spend, nothing for finalization
    assert [r.label for r in running.rows] == ["search"] and running.rows[0].values["calls"] == 14


def test_summary_of_a_running_run(run_data) -> None:
    facts = summary(run_data("running"))
    assert (facts["method"], facts["task"], facts["status"], facts["steps"], facts["candidates"]) == (
        "ape", "gen:sentiment_templates", "running", 1, 4)
    assert facts["seed_dev"] is None and facts["best"].id == 1
