"""`study` end to end on a deterministic fake model: exact accounting (grid spend = optimizer budget), the files,
halving's savings, and a cached re-run. Not evidence that the study says anything true: see tests/e2e."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from tests.fakes.fake_model import CountingModel

import prompthone as ph
from prompthone.errors import ConfigError
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.grid_study import GridSpec, expand_grid, study
from prompthone.grid_study.evaluate import SliceScorer
from prompthone.grid_study.grid import PRESETS
from prompthone.grid_study.runner import resolve_grid
from prompthone.report.from_store import run_data_from_store
from prompthone.store import RunStore

GRID = GridSpec(("", "You are smart."), ("", "Answer the question."), ("", "Go!"))
TINY_APE = "ape:num_subsamples=2,num_prompts_per_subsample=2,num_demos=2,eval_samples=4,mc_rounds=0,score_with=metric"


def test_slice_scorer_pays_each_example_once_and_matches_a_fresh_evaluation() -> None:
    task = ph.load_task("gen:sentiment_templates", limit=60)
    model = CountingModel()
    meter = BudgetMeter(None)
    evaluator = Evaluator(task, MeteredModel(model, meter=meter), mode="labels")
    prompts = [v.prompt(task, 8) for v in expand_grid(GRID, cot_tokens=8)[-2:]]  # CoT: two calls per example
    scorer = SliceScorer(evaluator, prompts, task.dev, meter)
    scorer(0, 4)
    assert model.calls == 8 and scorer.calls == [8, 0]
    score = scorer(0, len(task.dev))
    assert model.calls == scorer.calls[0] == 2 * len(task.dev)
    assert scorer(0, 4) == pytest.approx(scorer(0, 4)) and model.calls == 2 * len(task.dev)  # no new calls
    fresh = Evaluator(task, MeteredModel(CountingModel(), meter=BudgetMeter(None)), mode="labels")
    assert score == pytest.approx(fresh.evaluate(prompts[0], task.dev).score)


def test_study_on_a_fake_model(tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=30)
    result = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=8, seed=1, run_dir=tmp_path,
                   cache=tmp_path / "c.sqlite", progress=False)
    g = result.grid_outcome
    assert len(result.rows) == 16 and [r.rank for r in result.rows] == list(range(1, 17))
    assert all(r.n == len(task.dev) and r.pruned_at is None for r in result.rows)
    assert g.calls == g.full_grid_calls == 8 * len(task.dev) + 8 * 2 * len(task.dev) and g.calls_saved == 0
    assert sum(r.calls for r in result.rows) == g.calls
    scores = [r.dev_score for r in result.rows]
    assert scores == sorted(scores, reverse=True) and result.best_hand == result.rows[0]
    [opt] = result.optimizers
    assert opt.budget_calls == g.calls and opt.spend["calls"] <= g.calls
    assert opt.ranking.of == 17 and 1 <= opt.ranking.rank <= 17 and opt.ranking.compared == 16
    assert 0.0 <= result.best_hand_test_score <= 1.0 and 0.0 <= opt.test_score <= 1.0

    run = Path(result.run_dir)
    with (run / "table.csv").open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 16
    assert list(table[0]) == ["rank", "opener", "task_line", "closer", "cot", "dev_score", "n", "calls",
                              "pruned_at_rung", "rung_scores", "system"]
    assert {(r["opener"], r["task_line"], r["closer"], r["cot"]) for r in table} == {
        (o, t, c, str(cot)) for o in GRID.openers for t in GRID.task_lines for c in GRID.closers
        for cot in (False, True)}
    assert len(json.loads((run / "table.json").read_text())) == 16
    assert (run / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "study.json").read_text())
    assert saved["optimizers"][0]["budget_calls"] == saved["spend"]["calls"]
    assert "rank" in saved["optimizers"][0]["ranking"]["text"]
    summary = (run / "summary.md").read_text()
    assert opt.ranking.describe() in summary and "Mean dev score per choice" in summary
    assert json.loads((run / "config.json").read_text())["grid"]["openers"] == list(GRID.openers)

    again = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=8, seed=1, run_dir=tmp_path,
                  cache=tmp_path / "c.sqlite", progress=False)
    assert again.grid_outcome.spend["new_calls"] == 0 and again.grid_outcome.calls == g.calls
    assert again.optimizers[0].spend["new_calls"] == 0
    assert [r.dev_score for r in again.rows] == scores and again.run_dir != result.run_dir


def test_a_study_and_its_optimizers_are_runs_of_one_store(tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=30)
    result = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=0, seed=1, run_dir=tmp_path,
                   cache=tmp_path / "c.sqlite", progress=False)
    [opt] = result.optimizers
    group_id = Path(result.run_dir).name
    with RunStore.default(tmp_path) as store:
        runs = {r.id: r for r in store.list_runs()}
        assert set(runs) == {group_id, opt.run_id}  # one store: the study and its optimizer beside it
        group = runs[group_id]
        assert (group.method, group.status) == ("study", "finished") and group.config["kind"] == "study"
        assert group.result is not None and group.result["members"] == [opt.run_id]
        assert group.result["optimizers"][0]["run_id"] == opt.run_id
        [member] = [e for e in store.events(group_id) if e["event"] == "member"]
        assert (member["run_id"], member["dev_score"]) == (opt.run_id, opt.dev_score)
        assert runs[opt.run_id].method == "ape" and opt.run_dir == str(tmp_path / opt.run_id)
        with pytest.raises(ConfigError, match=f"is a study run.*its member runs: {opt.run_id}"):
            run_data_from_store(store, group_id)
    with pytest.raises(ConfigError, match="is a study run"):
        ph.resume(group_id, run_dir=tmp_path, progress=False)
    run = Path(result.run_dir)  # the study's files and its exported records share its directory
    assert {"table.csv", "summary.md", "study.json", "run.json", "config.json", "events.jsonl"} <= {
        p.name for p in run.iterdir()}
    assert json.loads((run / "run.json").read_text())["id"] == group_id


def test_study_with_halving_counts_what_it_saved(tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=120)  # 24 dev examples
    result = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=8, halving=True, eta=2,
                   min_slice=4, run_dir=tmp_path, cache=False, progress=False)
    g = result.grid_outcome
    assert [r.size for r in g.rungs] == [6, 12, 24] and [len(r.arms) for r in g.rungs] == [16, 8, 4]
    assert g.calls + g.calls_saved == g.full_grid_calls == 8 * 24 + 8 * 2 * 24
    assert g.calls == sum(r.calls for r in result.rows) < g.full_grid_calls
    assert sum(r.pruned_at == 0 for r in result.rows) == 8 and sum(r.pruned_at == 1 for r in result.rows) == 4
    assert [r.pruned_at for r in result.rows[:4]] == [None] * 4 and len(g.full_dev_rows) == 4
    assert [len(r.rung_scores) for r in result.rows] == [3] * 4 + [2] * 4 + [1] * 8
    assert all(r.rung_scores[-1] == r.dev_score for r in result.rows)
    assert result.optimizers[0].budget_calls == g.calls
    assert result.optimizers[0].ranking.compared == 4 and result.optimizers[0].ranking.of == 17
    summary = (Path(result.run_dir) / "summary.md").read_text()
    assert "calls saved" in summary and "rung 0: 16 variants on 6 dev examples, 8 promoted, 8 pruned" in summary
    assert "rung 2: 4 variants on 24 dev examples, final" in summary
    assert "On the first halving slice (6 dev examples)" in summary


@pytest.mark.parametrize("as_given", ["name", "grid"])
def test_a_presets_grid_brings_its_methods_and_cot_length(as_given: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI resolves `--grid battle-gollapudi` to its grid before the model loads: the preset's defaults must
    follow the grid, not only its name (they did not: the CLI ran APE with 64 reasoning tokens)."""
    tiny = replace(PRESETS["battle-gollapudi"], methods=(TINY_APE,), cot_tokens=8)  # its grid, fast knobs
    monkeypatch.setitem(PRESETS, "battle-gollapudi", tiny)
    grid = "battle-gollapudi" if as_given == "name" else resolve_grid("battle-gollapudi")
    task = ph.load_task("gen:arithmetic", limit=20)
    result = study(task, CountingModel(), grid=grid, run_dir=tmp_path, cache=False, progress=False)
    assert result.cot_tokens == 8 and [o.label for o in result.optimizers] == [TINY_APE]
    assert len(result.rows) == 2 * 5 * 3 * 4


def test_seed_is_not_a_study_method(tmp_path: Path) -> None:
    with pytest.raises(ph.ConfigError, match="seed"):
        study("gen:sentiment_templates", CountingModel(), grid=GRID, methods=["seed"], run_dir=tmp_path)


def test_study_runs_without_matplotlib_and_says_how_to_get_the_plot(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    grid = GridSpec(("", "You are smart."), ("",), ("",))
    result = study("gen:sentiment_templates", CountingModel(), grid=grid, methods=[TINY_APE], cot_tokens=0,
                   run_dir=tmp_path, cache=False, progress=False)
    assert len(result.rows) == 2 and "heatmap" not in result.files
    assert not (Path(result.run_dir) / "heatmap.png").exists()
    assert any("prompthone[plot]" in note for note in result.notes)
    assert "prompthone[plot]" in (Path(result.run_dir) / "summary.md").read_text()


def test_the_best_hand_prompt_is_reported_with_its_winners_curse(tmp_path: Path) -> None:
    """The best of many variants on one small dev set scores too well there; the study says so beside its scores
    (summary, notes) and points at the test score, which nothing was chosen on."""
    grid = GridSpec(("", "You are smart."), ("",), ("",))
    result = study("gen:sentiment_templates", CountingModel(), grid=grid, methods=[TINY_APE], cot_tokens=0,
                   run_dir=tmp_path, cache=False, progress=False)
    best = result.best_hand
    expected = (f"the best hand prompt is the best of 2 variants on {best.n} dev examples, so its dev score "
                f"({best.dev_score:.3f}) is biased upward (winner's curse); its test score "
                f"({result.best_hand_test_score:.3f}) is the estimate to compare")
    assert expected in result.notes
    assert "winner's curse" in (Path(result.run_dir) / "summary.md").read_text()
