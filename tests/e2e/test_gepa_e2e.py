"""GEPA end to end on the embedded model: two components in turn, merge attempts, metric-call cap, Pareto scores,
events, run files."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.run_files import assert_run_files, read_jsonl

import prompthone as ph

pytestmark = pytest.mark.e2e

MAX_METRIC_CALLS = 60
# 60 metric calls allow at most 17 iterations (3 each at least, after the seed's 8) with ≤ 2 reflection calls
# each, so the call budget below never binds: the metric-call cap is what stops the run.
BUDGET = 120
TINY = {"max_metric_calls": MAX_METRIC_CALLS, "meta_max_tokens": 160, "use_merge": True}



def test_gepa_evolves_instruction_and_system_message_within_its_metric_calls(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    result = ph.optimize(task, method="gepa", model=embedded_model, budget=BUDGET, seed=1, options=TINY,
                         run_dir=tmp_path, cache=tmp_path / "calls.sqlite", progress=False)
    run = Path(result.run_dir or "")
    assert_run_files(run)
    assert result.stopped_reason == "finished" and result.spend["calls"] <= BUDGET
    assert result.best_dev_score >= result.seed_dev_score
    assert result.best_prompt.output_format == task.output_format  # not a component
    assert result.best_prompt.demos == ()

    events = read_jsonl(run / "events.jsonl")
    reflections = [e for e in events if e["event"] == "reflection"]
    merges = [e for e in events if e["event"] == "merge"]
    checked = [e for e in merges if e["outcome"] in {"rejected", "accepted"}]  # such an iteration does no reflection
    assert len(reflections) >= 3 and len(reflections) + len(checked) == result.steps
    # round robin: the seed's instruction first; the next parent, the seed again or its child, is at the system
    assert reflections[0]["components"] == ["instruction"] and reflections[1]["components"] == ["system"]
    assert all(e["outcome"] in {"no_pair", "duplicate", "rejected", "accepted"} for e in merges)
    assert all(isinstance(e["parent"], int) and len(e["minibatch"]) == 3 and "accepted" in e for e in reflections)
    assert any("child_scores" in e for e in reflections), "no reflection produced a usable instruction"
    for e in reflections:  # acceptance is strict improvement on the same minibatch
        if "child_scores" in e:
            assert e["accepted"] == (e["child_sum"] > e["parent_sum"])
    # label scoring: one task-model call per scored example, all counted as metric calls, never past the cap
    assert events[-1]["metric_calls"] == result.spend["by_role"]["task"] <= MAX_METRIC_CALLS

    records: dict[int, dict] = {}
    for record in read_jsonl(run / "candidates.jsonl"):
        records[record["id"]] = record  # the last record of each candidate holds all its scores
    accepted = [e["child"] for e in reflections + merges if e["accepted"]]
    assert sorted(records) == [0, *accepted]  # the pool is the seed and the accepted children
    for record in records.values():
        assert len(record["data"]["pareto_scores"]) == len(task.dev)
        assert record["scores"]["pareto"] == pytest.approx(sum(record["data"]["pareto_scores"]) / len(task.dev))
        assert record["scores"]["dev"] == record["scores"]["pareto"]  # the Pareto set is the whole dev split
    steps = read_jsonl(run / "steps.jsonl")
    assert all(set(s["frontier"]) <= set(records) for s in steps)
