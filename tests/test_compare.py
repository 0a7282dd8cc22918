"""`compare`: method specs, the summary statistics, and an end-to-end run on the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prompthone as ph
from prompthone.compare import ComparisonRow, MethodSpec, compare, summarize
from prompthone.errors import ConfigError
from prompthone.store import RunStore


def test_method_specs_parse_and_validate_early() -> None:
    spec = MethodSpec.parse("apo:selector=ucb-e, rounds=2")
    assert (spec.method, spec.options) == ("apo", {"selector": "ucb-e", "rounds": "2"})
    assert MethodSpec.parse("seed").method == "seed"
    with pytest.raises(ConfigError, match="unknown method"):
        MethodSpec.parse("nope")
    with pytest.raises(ConfigError, match="key=value"):
        MethodSpec.parse("apo:ucb")
    with pytest.raises(ConfigError, match="unknown option"):
        MethodSpec.parse("apo:beam=3")


def test_summary_is_mean_and_sample_std() -> None:
    rows = [ComparisonRow("a", 0, 0.5, 0.4, 10, 2, 100, 1.0), ComparisonRow("a", 1, 0.7, 0.6, 20, 4, 300, 3.0),
            ComparisonRow("b", 0, 0.9, 0.9, 0, 0, 0, 0.5)]
    a, b = summarize(rows)
    assert a["method"] == "a" and a["seeds"] == 2
    assert a["test_mean"] == pytest.approx(0.6) and a["test_std"] == pytest.approx(0.1414213, abs=1e-6)
    assert (a["task_calls"], a["meta_calls"], a["tokens"], a["wall_time_s"]) == (15, 3, 200, 2.0)
    assert b["test_std"] == 0.0


@pytest.mark.e2e
def test_compare_end_to_end(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    methods = ["seed", "ape:num_subsamples=2,num_prompts_per_subsample=2,eval_samples=6,mc_rounds=0",
               "apo:rounds=1,beam_size=2,minibatch_size=6,n_gradients=1,eval_rounds=2,eval_prompts_per_round=2,"
               "samples_per_eval=3,selector=successive-halving"]
    rows, path = compare(task, methods, model=embedded_model, task_calls=30, seeds=[0, 1], run_dir=tmp_path,
                         cache=tmp_path / "c.sqlite", progress=False)
    assert len(rows) == 6
    assert all(r.task_calls <= 30 for r in rows)
    assert {r.test_score for r in rows if r.label == "seed"} == {rows[0].test_score}  # same split every seed
    saved = json.loads((path / "compare.json").read_text())
    assert len(saved["rows"]) == 6 and [s["method"] for s in saved["summary"]] == methods
    assert (path / "compare.md").read_text().count("\n| ") >= 4
    members = [r.run_id for r in rows if r.label != "seed"]
    assert all(members) and all(r.run_id is None for r in rows if r.label == "seed")
    with RunStore.default(tmp_path) as store:  # the comparison and its runs: one store, one way runs are saved
        group = store.get_run(path.name)
        assert (group.method, group.status) == ("compare", "finished")
        assert group.result is not None and group.result["members"] == members
        assert [e["label"] for e in store.events(path.name) if e["event"] == "member"] == [r.label for r in rows]
        assert {store.get_run(m).method for m in members} == {"ape", "apo"}
