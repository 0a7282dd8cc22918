"""The quality benchmark's bookkeeping on synthetic raw data (no model): the compact encoding, the inclusion rule, the
merge of raw files across invocations, the summary numbers against hand computation, and the markdown's wording."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import outcomes
from benchmarks import quality as q
from prompthone.errors import ConfigError
from prompthone.evaluation.statistics import mean_over_runs_and_examples
from prompthone.grid_study.grid import default_grid


def _precheck(task: str, dev_none: float = 0.5, majority: float = 0.5, regime: str = "local") -> dict[str, Any]:
    return {"regime": regime, "task": task, "n_train": 10, "n_dev": 4, "n_test": 4, "dev_majority": majority,
            "dev": {"none": dev_none, "contextual": 0.75, "batch": 0.6}, "calls": 0, "wall_time_s": 0.0}


def _run(task: str, method: str, seed: int, best: str, reference: str, regime: str = "local") -> dict[str, Any]:
    score = sum(map(int, best)) / len(best)
    return {"regime": regime, "task": task, "method": method, "seed": seed, "spec": method, "calibration": "none",
            "test_score": score, "dev_score": score, "task_calls": 100 + seed, "meta_calls": 10, "tokens": 1000,
            "wall_time_s": 2.0, "run_id": None, "best": best, "reference": reference}


@pytest.fixture
def raw() -> dict[str, Any]:
    """Two included tasks on `local`: A (4 test examples), B (20); seed and ape on seeds 0 and 1."""
    raw = q.new_raw(q.BUDGET)
    raw["invocations"].append({"command": "python -m benchmarks.quality --tasks A", "versions": "v"})
    entries = [("precheck", _precheck("A")), ("precheck", _precheck("B")),
               ("runs", _run("A", "seed", 0, "1000", "1000")), ("runs", _run("A", "seed", 1, "1000", "1000")),
               ("runs", _run("A", "ape", 0, "1100", "1000")), ("runs", _run("A", "ape", 1, "1110", "1000")),
               ("runs", _run("B", "seed", 0, "0" * 20, "0" * 20)), ("runs", _run("B", "ape", 0, "1" * 20, "0" * 20)),
               ("runs", _run("B", "ape", 1, "1" * 20, "0" * 20))]
    for kind, entry in entries:
        q.merge(raw, kind, entry | {"invocation": 0})
    return raw


def test_compact_encoding_round_trips() -> None:
    assert outcomes.encode([1.0, 0.0, 0.0, 1.0]) == "1001"
    assert outcomes.decode("1001") == [1.0, 0.0, 0.0, 1.0]
    floats = [0.5, 1.0, 0.123456, 0.0]
    assert outcomes.encode(floats) == [0.5, 1.0, 0.1235, 0.0]
    assert outcomes.decode(outcomes.encode(floats)) == [0.5, 1.0, 0.1235, 0.0]
    assert outcomes.decode(json.loads(json.dumps(outcomes.encode([1, 1, 0])))) == [1.0, 1.0, 0.0]
    assert outcomes.encode([]) == "" and outcomes.decode("") == []


@pytest.mark.parametrize(("dev", "majority", "expected", "reason"), [
    ({"none": 0.5, "contextual": 0.5, "batch": 0.5}, 0.5, False, "no signal"),           # at chance
    ({"none": 0.5, "contextual": 33 / 60, "batch": 0.5}, 30 / 60, True, "contextual"),   # exactly +0.05: in
    ({"none": 0.5, "contextual": 0.5, "batch": 32 / 60}, 30 / 60, False, "no signal"),   # +0.033: out
    ({"none": 0.55, "contextual": 0.9, "batch": 0.7}, 0.5, True, "contextual"),         # calibration carries it
    ({"none": 0.9, "contextual": 0.95, "batch": 0.95}, 0.5, False, "at ceiling"),       # 0.9 is at ceiling
    ({"none": 54 / 60, "contextual": 0.5, "batch": 0.5}, 0.5, False, "at ceiling"),
    ({"none": 53 / 60, "contextual": 0.5, "batch": 0.5}, 0.5, True, "none"),
    ({"none": 0.7, "contextual": 0.7, "batch": 0.7}, 0.7, False, "no signal"),          # majority-label guessing
])
def test_inclusion_rule(dev: dict[str, float], majority: float, expected: bool, reason: str) -> None:
    ok, why = q.inclusion(dev, majority)
    assert ok is expected
    assert reason in why


def test_merge_keeps_old_entries_and_replaces_only_the_same_key() -> None:
    raw = q.new_raw(q.BUDGET)
    first, other = _run("A", "ape", 0, "10", "00"), _run("A", "ape", 1, "11", "00")
    elsewhere = _run("A", "ape", 0, "01", "00", regime="qwen-0.5b")
    for e in (first, other, elsewhere):
        q.merge(raw, "runs", e)
    again = _run("A", "ape", 0, "00", "00")
    q.merge(raw, "runs", again)
    assert raw["runs"] == [again, other, elsewhere]  # replaced in place; the rest untouched
    q.merge(raw, "precheck", _precheck("A"))
    q.merge(raw, "precheck", _precheck("A", regime="qwen-0.5b"))
    assert len(raw["precheck"]) == 2


def test_raw_file_merges_across_invocations(tmp_path: Path) -> None:
    path = tmp_path / "results" / "quality.json"
    one = q.RawResults(path, q.BUDGET, {"command": "one", "versions": "v", "started": "t1"})
    two = q.RawResults(path, q.BUDGET, {"command": "two", "versions": "v", "started": "t2"})  # opened before one wrote
    one.add("runs", _run("A", "ape", 0, "10", "00"))
    two.add("runs", _run("A", "ape", 1, "11", "00"))
    two.add("runs", _run("A", "ape", 1, "01", "00"))
    data = json.loads(path.read_text())
    assert [(e["seed"], e["best"], e["invocation"]) for e in data["runs"]] == [(0, "10", 0), (1, "01", 1)]
    assert [i["command"] for i in q.commands(data)] == ["one", "two"]
    assert not path.with_name("quality.json.tmp").exists()
    with pytest.raises(ConfigError, match="budget"):
        q.RawResults(path, 200, {"command": "three", "versions": "v", "started": "t3"})


def test_suite_may_grow_by_appended_candidates_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "quality.json"
    first = dict(list(q.SUITE.items())[:3])
    monkeypatch.setattr(q, "SUITE", first)
    q.RawResults(path, q.BUDGET, {"command": "one"}).add("precheck", _precheck("A"))
    monkeypatch.setattr(q, "SUITE", first | {"evals:new": 400})  # a candidate appended: accepted and recorded
    q.RawResults(path, q.BUDGET, {"command": "two"}).add("precheck", _precheck("B"))
    data = json.loads(path.read_text())
    assert list(data["setup"]["suite"]) == [*first, "evals:new"] and len(data["precheck"]) == 2
    assert [e["added"] for e in data["suite_extensions"]] == [["evals:new"]]
    for changed in (dict(list(first.items())[1:]) | {"evals:new": 400},  # a recorded task removed
                    first | {next(iter(first)): 7, "evals:new": 400}):  # a recorded task's draw changed
        monkeypatch.setattr(q, "SUITE", changed)
        with pytest.raises(ConfigError, match="suite"):
            q.RawResults(path, q.BUDGET, {"command": "three"})


def test_only_a_method_without_runs_may_be_respecified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "quality.json"
    q.RawResults(path, q.BUDGET, {"command": "one"}).add("runs", _run("A", "ape", 0, "10", "00"))
    specs = q.method_specs

    def respecified(method: str) -> Any:
        return lambda budget: {k: (v[0] + ",x=1", v[1]) if k == method else v for k, v in specs(budget).items()}

    monkeypatch.setattr(q, "method_specs", respecified("opro"))  # opro has no run: accepted
    q.RawResults(path, q.BUDGET, {"command": "two"}).add("runs", _run("A", "ape", 1, "10", "00"))
    assert json.loads(path.read_text())["setup"]["methods"]["opro"]["spec"].endswith(",x=1")
    monkeypatch.setattr(q, "method_specs", respecified("ape"))  # ape has runs under its spec: refused
    with pytest.raises(ConfigError, match="methods"):
        q.RawResults(path, q.BUDGET, {"command": "three"})


def test_commands_are_shown_without_file_locations_and_with_their_commit() -> None:
    invocation = {"command": "python -m benchmarks.quality --stage methods --raw /x/q.json --out=/y --tasks a",
                  "versions": "v1", "commit": "0123456789abcdef+dirty"}
    assert q.shown(invocation) == "`python -m benchmarks.quality --stage methods --tasks a` (v1; commit 0123456+dirty)"
    assert q.shown({"command": "python -m benchmarks.quality", "versions": "v1"}) == \
        "`python -m benchmarks.quality` (v1)"


def test_quick_results_stay_in_memory(tmp_path: Path) -> None:
    results = q.RawResults(None, 40, {"command": "quick", "versions": "v", "started": "t"})
    results.add("precheck", _precheck("A"))
    assert results.data["precheck"][0]["invocation"] == 0
    assert not list(tmp_path.iterdir())


def test_summary_numbers_match_hand_computation(raw: dict[str, Any]) -> None:
    by_method = {s["method"]: s for s in q.task_summary(raw, "local", "A")}
    ape = by_method["ape"]
    assert ape["test_mean"] == pytest.approx(0.625)  # (0.5 + 0.75) / 2
    # the interval is over seeds and test examples (compare.score_interval), inside the scores' range
    assert ape["test_ci95"] == list(mean_over_runs_and_examples([[1, 1, 0, 0], [1, 1, 1, 0]])[1:])
    assert 0 <= ape["test_ci95"][0] < 0.625 < ape["test_ci95"][1] <= 1
    # per example, mean over seeds: best (1, 1, 0.5, 0), seed prompt (1, 0, 0, 0): difference 0.375
    assert ape["vs_seed"]["difference"] == pytest.approx(0.375)
    assert ape["vs_seed"]["score_a"] == pytest.approx(0.625) and ape["vs_seed"]["score_b"] == pytest.approx(0.25)
    assert ape["task_calls"] == pytest.approx(100.5)
    assert by_method["seed"]["test_mean"] == pytest.approx(0.25)
    b = {s["method"]: s for s in q.task_summary(raw, "local", "B")}["ape"]["vs_seed"]
    assert (b["difference"], b["low"], b["high"], b["significant"]) == (1.0, 1.0, 1.0, True)
    [agg] = q.aggregate(raw, "local")
    assert agg == {"method": "ape", "tasks": 2, "mean_difference": pytest.approx((0.375 + 1.0) / 2), "gain": 1,
                   "no_difference": 1, "loss": 0}


def test_aggregate_leaves_out_excluded_tasks(raw: dict[str, Any]) -> None:
    q.merge(raw, "precheck", _precheck("B", dev_none=0.95) | {"invocation": 0})
    assert q.included_tasks(raw, "local") == ["A"]
    [agg] = q.aggregate(raw, "local")
    assert (agg["tasks"], agg["mean_difference"]) == (1, pytest.approx(0.375))


def test_markdown_says_no_difference_when_the_interval_holds_zero(raw: dict[str, Any]) -> None:
    ape_a = next(s for s in q.task_summary(raw, "local", "A") if s["method"] == "ape")["vs_seed"]
    assert ape_a["low"] <= 0 <= ape_a["high"]
    table_a = q.task_table(raw, "local", "A")
    row = next(line for line in table_a.splitlines() if line.startswith("| ape "))
    assert "no difference: +0.375 (+0.000 … +0.750)" in row
    assert row.startswith("| ape (2 of 5 seeds) |")  # an incomplete unit says so
    row_b = next(line for line in q.task_table(raw, "local", "B").splitlines() if line.startswith("| ape "))
    assert "no difference" not in row_b and "+1.000 (+1.000 … +1.000)" in row_b
    assert "| ape | 2 | +0.688 | 1 | 1 | 0 |" in q.aggregate_table(raw, "local")


def test_section_is_written_from_the_raw_file(raw: dict[str, Any], tmp_path: Path) -> None:
    raw_path, results_md = tmp_path / "quality.json", tmp_path / "RESULTS.md"
    raw_path.write_text(json.dumps(raw))
    assert q.main(["--from-raw", "--raw", str(raw_path), "--results-md", str(results_md)]) == 0
    text = results_md.read_text()
    assert "<!-- quality:start -->" in text and "`python -m benchmarks.quality --tasks A` (v)" in text
    assert "| A | 10 / 4 / 4 | 0.500 | 0.500 / 0.750 / 0.600 | included:" in text
    assert "Only 2 task(s) pass the rule" in text  # fewer than 5 for the 135M regime, said so
    assert "Not prechecked" in text and "gen:sentiment_templates" in text


def test_yardstick_table_reads_the_best_hand_prompt(raw: dict[str, Any]) -> None:
    q.merge(raw, "yardstick", {"regime": "local", "task": "A", "n_test": 4, "phrasings": ["p"], "prompts": [],
                               "best": {"phrasing": 2, "placement": "system", "demos": 8, "calibration": "batch",
                                        "score": 1.0, "outcomes": "1111"}, "calls": 940, "wall_time_s": 1.0,
                               "invocation": 0})
    assert "| A | 4 | 0.250 | 0.625 (ape) | 1.000 | 3 · system · 8 · batch | 940 |" in q.yardstick_table(raw, "local")


def test_hand_prompts_cover_the_grid() -> None:
    task = q.load("gen:sentiment_templates")
    assert (len(task.test), len(task.dev), len(task.train)) == (200, 60, 140)
    assert q.EXPERT_OPENER in default_grid().openers
    prompts = q.hand_prompts(task)
    assert len(prompts) == 24 and len({p.key() for _, p in prompts}) == 24
    for form, prompt in prompts:
        text = q.phrasings(task)[form["phrasing"]]
        assert (prompt.instruction, prompt.system) == ((text, None) if form["placement"] == "user" else ("", text))
        assert len(prompt.demos) == form["demos"] and prompt.output_format == task.output_format
        targets = [d.target for d in prompt.demos]
        assert all(targets.count(label) == form["demos"] // 2 for label in task.labels or ())  # label-balanced
    eight = next(p for f, p in prompts if f["demos"] == 8)
    four = next(p for f, p in prompts if f["demos"] == 4)
    assert eight.demos[:4] == four.demos  # one draw: 2 ⊂ 4 ⊂ 8


def test_split_sizes() -> None:
    assert q.split_sizes(400) == (200, 60)
    assert q.split_sizes(320) == (160, 60)
    assert q.split_sizes(180) == (90, 45)
    assert q.split_sizes(918) == (200, 60)
    assert q.split_sizes(120, quick=True) == (40, 20)


def test_method_knobs_are_sized_and_parse() -> None:
    from prompthone.compare import MethodSpec

    specs = q.method_specs(300)
    assert list(specs)[:3] == ["seed", "seed+contextual", "seed+batch"]
    assert specs["gepa"][0].startswith("gepa:max_metric_calls=300,")
    for spec, calibration in specs.values():
        MethodSpec.parse(spec)  # a knob the method does not have fails here
        assert calibration in q.CALIBRATIONS


def test_head_to_head_pairs_two_methods_on_the_same_examples(raw: dict[str, Any]) -> None:
    for seed, best in ((0, "1" * 20), (1, "1" * 10 + "0" * 10)):
        q.merge(raw, "runs", _run("B", "auto", seed, best, "0" * 20) | {"invocation": 0})
    q.merge(raw, "runs", _run("B", "seed+batch", 0, "1" * 5 + "0" * 15, "0" * 20) | {"invocation": 0})
    c = q.head_to_head(raw, "local", "B", "auto", "seed+batch")
    assert c is not None
    # per example: auto (1 × 10, 0.5 × 10) against seed+batch (1 × 5, 0 × 15): 0.75 − 0.25
    assert (c["score_a"], c["score_b"], c["difference"]) == (pytest.approx(0.75), pytest.approx(0.25),
                                                            pytest.approx(0.5))
    assert q.head_to_head(raw, "local", "A", "auto", "seed+batch") is None  # auto never ran on A
    table = q.head_to_head_table(raw, "local")
    # a published method that ran on the task (ape, in the fixture: 1 on every example) is set against the default
    assert table.count("\n| B |") == 2 and "| B | auto − seed+batch | +0.500 (" in table
    assert "| B | auto − ape | -0.250 (" in table
    q.merge(raw, "runs", _run("B", "mipro", 0, "1" * 15 + "0" * 5, "0" * 20) | {"invocation": 0})
    table = q.head_to_head_table(raw, "local")
    assert table.count("\n| B |") == 3 and "| B | auto − mipro | no difference: +0.000 (" in table
