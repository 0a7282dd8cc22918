"""`study`'s meta-model default and calibration on deterministic fakes: the meta model is chosen as `optimize`
chooses it (`api.default_meta_model`) and recorded, an explicit one wins; under a calibration every hand prompt
carries its prior, whose calls are metered (in the grid's spend, each variant's calls and halving's accounting)
and the optimizers run calibrated too."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.fakes.fake_model import CountingModel
from tests.optimizers.test_checkpoint_resume import InstructionModel
from typer.testing import CliRunner

import prompthone as ph
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.grid_study import GridSpec, expand_grid, study
from prompthone.store import RunStore

GRID = GridSpec(("", "You are smart."), ("", "Answer the question."), ("", "Go!"))
TINY_APE = "ape:num_subsamples=2,num_prompts_per_subsample=2,num_demos=2,eval_samples=4,mc_rounds=0,score_with=metric"


@pytest.mark.parametrize(("meta_model", "used"), [(None, "qwen-1.5b"), ("qwen-0.5b", "qwen-0.5b")])
def test_an_embedded_task_model_gets_the_default_meta_model_and_an_explicit_one_wins(
        embedded_fakes: dict[str, InstructionModel], tmp_path: Path, meta_model: str | None, used: str) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=30)
    grid = GridSpec(("", "You are smart."), ("",), ("",))
    result = study(task, "local", grid=grid, methods=[TINY_APE], meta_model=meta_model, cot_tokens=0,
                   run_dir=tmp_path, cache=False, progress=False)
    assert result.model == "fake:local" and result.meta_model == f"fake:{used}"
    assert embedded_fakes[used].calls > 0  # it proposed the optimizer's prompts
    assert all(m.calls == 0 for spec, m in embedded_fakes.items() if spec not in ("local", used))
    run = Path(result.run_dir)
    assert json.loads((run / "config.json").read_text())["meta_model"] == f"fake:{used}"
    assert json.loads((run / "study.json").read_text())["meta_model"] == f"fake:{used}"
    assert f"meta model: fake:{used}" in (run / "summary.md").read_text()
    [opt] = result.optimizers
    assert opt.spend["by_role"]["meta"] > 0  # type: ignore[index]


def test_a_model_object_proposes_for_itself(embedded_fakes: dict[str, InstructionModel], tmp_path: Path) -> None:
    grid = GridSpec(("", "You are smart."), ("",), ("",))
    result = study("gen:sentiment_templates", CountingModel(), grid=grid, methods=[TINY_APE], cot_tokens=0,
                   run_dir=tmp_path, cache=False, progress=False)
    assert result.meta_model == "fake:counting" and all(m.calls == 0 for m in embedded_fakes.values())


def test_contextual_calibration_calibrates_every_hand_prompt_and_meters_its_calls(tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=30)
    n_dev = len(task.dev)
    result = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=8, seed=1, run_dir=tmp_path,
                   cache=False, calibration="contextual", progress=False)
    g = result.grid_outcome
    assert g.calibration == result.calibration == "contextual"
    assert all(r.calibration is not None and r.calibration.method == "contextual" and r.calibration.n == 3
               for r in result.rows)
    # three content-free inputs per variant, reasoned first (two calls each) by the CoT ones
    assert {r.calibration_calls for r in result.rows if not r.cot} == {3}
    assert {r.calibration_calls for r in result.rows if r.cot} == {6}
    assert {r.calls for r in result.rows if not r.cot} == {3 + n_dev}
    assert {r.calls for r in result.rows if r.cot} == {6 + 2 * n_dev}
    assert g.calls == sum(r.calls for r in result.rows) == 8 * (3 + n_dev) + 8 * (6 + 2 * n_dev)
    assert g.full_grid_calls == g.calls and g.calls_saved == 0
    [opt] = result.optimizers
    assert opt.budget_calls == g.calls  # the calibration's calls are part of the optimizers' budget

    # the dev score is the calibrated one: a fresh evaluation of the prompt with that prior gives it
    best = result.rows[0]
    variant = expand_grid(GRID, cot_tokens=8)[best.index]
    fresh = Evaluator(task, MeteredModel(CountingModel(), meter=BudgetMeter(None)), mode="labels")
    prompt = replace(variant.prompt(task, 8), calibration=best.calibration)
    assert fresh.evaluate(prompt, task.dev).score == pytest.approx(best.dev_score)

    run = Path(result.run_dir)
    saved = json.loads((run / "study.json").read_text())
    assert saved["calibration"] == "contextual" and saved["rows"][0]["calibration"]["method"] == "contextual"
    assert json.loads((run / "config.json").read_text())["calibration"] == "contextual"
    assert "calibration: contextual" in (run / "summary.md").read_text()
    assert opt.best_prompt.calibration is not None  # the optimizer ran calibrated too
    with RunStore.default(tmp_path) as store:
        member = store.get_run(opt.run_id)  # type: ignore[arg-type]
        assert member is not None and member.config["calibration"] == "contextual"


def test_halving_with_calibration_pays_each_prior_once_and_counts_what_it_saved(tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=120)  # 24 dev examples
    result = study(task, CountingModel(), grid=GRID, methods=[TINY_APE], cot_tokens=8, halving=True, eta=2,
                   min_slice=4, run_dir=tmp_path, cache=False, calibration="contextual", progress=False)
    g = result.grid_outcome
    assert [r.size for r in g.rungs] == [6, 12, 24] and [len(r.arms) for r in g.rungs] == [16, 8, 4]
    calibration_calls = 8 * 3 + 8 * 6  # every variant was scored on the first slice, so calibrated once
    assert sum(r.calibration_calls for r in result.rows) == calibration_calls
    assert all(r.calibration is not None for r in result.rows)
    assert all(r.calls == r.calibration_calls + (2 if r.cot else 1) * r.n for r in result.rows)
    assert g.calls == sum(r.calls for r in result.rows) < g.full_grid_calls
    assert g.calls + g.calls_saved == g.full_grid_calls == calibration_calls + 8 * 24 + 8 * 2 * 24
    assert result.optimizers[0].budget_calls == g.calls


def test_calibration_without_label_scoring_is_said_not_pretended(tmp_path: Path) -> None:
    grid = GridSpec(("", "You are smart."), ("",), ("",))
    result = study("gen:sentiment_templates", CountingModel(), grid=grid, methods=[TINY_APE], cot_tokens=0,
                   run_dir=tmp_path, cache=False, scoring="generate", calibration="batch", progress=False)
    assert result.calibration == "none" and all(r.calibration is None for r in result.rows)
    assert any("batch calibration asked for" in note for note in result.notes)


def test_an_unknown_calibration_fails_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ph.ConfigError, match="unknown calibration"):
        study("gen:sentiment_templates", CountingModel(), grid=GRID, calibration="nope", run_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_cli_study_says_which_meta_model_and_shows_the_calibration(embedded_fakes: dict[str, InstructionModel],
                                                                   tmp_path: Path) -> None:
    from prompthone.cli import app

    grid = tmp_path / "grid.yaml"
    grid.write_text("openers: [null, You are smart.]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "--task", "gen:sentiment_templates", "--limit", "30", "--grid",
                                      str(grid), "-M", TINY_APE, "--cot-tokens", "0", "--no-cache",
                                      "--runs-dir", str(tmp_path / "runs"), "--calibration", "contextual"])
    assert result.exit_code == 0, result.output
    said, shown = " ".join(result.stderr.split()), " ".join(result.stdout.split())  # rich wraps at 80 columns
    assert "meta model: qwen-1.5b (the strongest embedded model installed; --meta-model chooses another)" in said
    assert "calibration: contextual" in shown and "meta model: fake:qwen-1.5b" in shown
    [run] = list((tmp_path / "runs").glob("*-study-*"))
    config = json.loads((run / "config.json").read_text())
    assert (config["meta_model"], config["calibration"]) == ("fake:qwen-1.5b", "contextual")


def test_study_help_names_the_meta_model_and_calibration_options() -> None:
    from prompthone.cli import app

    result = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    shown = " ".join(result.stdout.replace("│", " ").split())  # rich's help box: join its wrapped lines
    assert "--meta-model" in shown and "--calibration" in shown
    assert "strongest embedded model installed when --model is an embedded one" in shown
    assert "none | contextual" in shown
