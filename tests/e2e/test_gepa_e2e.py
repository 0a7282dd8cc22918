"""GEPA end to end on the embedded model: metric-call cap, Pareto scores of every pool member, events, run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prompthone as ph

pytestmark = pytest.mark.e2e

MAX_METRIC_CALLS = 60
# 60 metric calls allow at most 17 iterations (3 each at least, after the seed's 8) with ≤ 2 reflection calls
# each, so the call budget below never binds: the metric-call cap is what stops the run.
BUDGET = 120
TINY = {"max_metric_calls": MAX_METRIC_CALLS, "meta_max_tokens": 160}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gepa_evolves_the_instruction_within_its_metric_calls(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    result = ph.optimize(task, method="gepa", model=embedded_model, budget=BUDGET, seed=1, options=TINY,
                         run_dir=tmp_path, cache=tmp_path / "calls.sqlite", progress=False)
    run = Path(result.run_dir or "")
    for name in ("config.json", "candidates.jsonl", "steps.jsonl", "events.jsonl", "result.json"):
        assert (run / name).is_file(), name
    assert result.stopped_reason == "finished" and result.spend["calls"] <= BUDGET
    assert result.best_dev_score >= result.seed_dev_score
    assert result.best_prompt.output_format == task.output_format  # only the instruction evolves

    events = _lines(run / "events.jsonl")
    reflections = [e for e in events if e["event"] == "reflection"]
    assert len(reflections) >= 3 and len(reflections) == result.steps
    assert all(isinstance(e["parent"], int) and len(e["minibatch"]) == 3 and "accepted" in e for e in reflections)
    assert any("child_scores" in e for e in reflections), "no reflection produced a usable instruction"
    for e in reflections:  # acceptance is strict improvement on the same minibatch
        if "child_scores" in e:
            assert e["accepted"] == (e["child_sum"] > e["parent_sum"])
    # label scoring: one task-model call per scored example, all counted as metric calls, never past the cap
    assert events[-1]["metric_calls"] == result.spend["by_role"]["task"] <= MAX_METRIC_CALLS

    records: dict[int, dict] = {}
    for record in _lines(run / "candidates.jsonl"):
        records[record["id"]] = record  # the last record of each candidate holds all its scores
    accepted = [e["child"] for e in reflections if e["accepted"]]
    assert sorted(records) == [0, *accepted]  # the pool is the seed and the accepted children
    for record in records.values():
        assert len(record["data"]["pareto_scores"]) == len(task.dev)
        assert record["scores"]["pareto"] == pytest.approx(sum(record["data"]["pareto_scores"]) / len(task.dev))
        assert record["scores"]["dev"] == record["scores"]["pareto"]  # the Pareto set is the whole dev split
    steps = _lines(run / "steps.jsonl")
    assert all(set(s["frontier"]) <= set(records) for s in steps)
