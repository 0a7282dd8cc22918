"""`study`: the eccentric-prompts experiment (Battle & Gollapudi 2024) on any task and model.

1. Score every hand combination (system message = opener × task line × closer, with and without CoT) on the
   dev split, or run successive halving over dev slices (`halving=True`), each calibrated under `calibration`.
2. Run one or more optimizers, seeded, at the same budget in model calls as the grid spent (all calls: task
   and meta model; cache hits count as calls, so a warm cache gives the same budget), sharing the call cache
   and the calibration; the meta model defaults as in `optimize` (`api.default_meta_model`).
3. Rank each optimized prompt among the hand combos on dev, and score the best hand prompt and each optimized
   prompt on test. The study is a run of the store (`run.group`), each optimizer a run of it too; its
   directory holds the table, heat map, summary and study.json beside the exported records.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prompthone._version import __version__
from prompthone.api import default_meta_model, optimize, resolve_cache, resolve_model
from prompthone.compare import MethodSpec
from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import ScoringMode
from prompthone.grid_study.evaluate import GridOutcome, HandRow, evaluate_grid
from prompthone.grid_study.grid import (
    PRESETS,
    GridSpec,
    HandVariant,
    default_grid,
    expand_grid,
    load_grid,
    preset_grid,
    preset_of,
)
from prompthone.grid_study.heatmap import plot_heatmap
from prompthone.grid_study.outputs import write_summary, write_table
from prompthone.grid_study.ranking import Ranking, rank_among
from prompthone.models.base import Model
from prompthone.prompts.calibration import DEFAULT_CALIBRATION, check_calibration
from prompthone.prompts.prompt import Prompt
from prompthone.run.group import GroupRun, group_run, member_id
from prompthone.run.session import Session
from prompthone.tasks import load_task
from prompthone.tasks.example import Task

log = logging.getLogger(__name__)

DEFAULT_COT_TOKENS = 64


@dataclass
class OptimizerOutcome:
    """One optimizer at the grid's budget: its prompt's dev and test scores and its rank among the hand combos."""

    label: str
    method: str
    options: dict[str, Any]
    budget_calls: int
    dev_score: float
    test_score: float
    ranking: Ranking
    best_prompt: Prompt
    spend: dict[str, object]
    final_spend: dict[str, object]
    stopped_reason: str
    wall_time_s: float
    run_dir: str | None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["ranking"] = self.ranking.to_dict()
        data["best_prompt"] = self.best_prompt.to_dict()
        return data


@dataclass
class StudyResult:
    """The scored grid, the best hand prompt's test score, each optimizer's outcome, and the files written."""

    task: str
    model: str
    meta_model: str
    grid: GridSpec
    cot_tokens: int
    seed: int
    grid_outcome: GridOutcome
    best_hand: HandRow
    best_hand_test_score: float
    optimizers: list[OptimizerOutcome]
    run_dir: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[HandRow]:
        """Every hand combination, best first."""
        return self.grid_outcome.rows

    @property
    def calibration(self) -> str:
        """The calibration every hand prompt was scored with ("none" when the grid was not label-scored)."""
        return self.grid_outcome.calibration

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "meta_model": self.meta_model, "grid": self.grid.to_dict(),
                "cot_tokens": self.cot_tokens, "seed": self.seed, **self.grid_outcome.to_dict(),
                "best_hand": self.best_hand.to_dict(), "best_hand_test_score": self.best_hand_test_score,
                "optimizers": [o.to_dict() for o in self.optimizers], "run_dir": self.run_dir,
                "files": self.files, "notes": self.notes}


def resolve_grid(grid: GridSpec | str | Path | None) -> GridSpec:
    """Our default lists (None), a `GridSpec`, a preset's name (`grid.PRESETS`) or a YAML file."""
    if grid is None:
        return default_grid()
    if isinstance(grid, str) and grid in PRESETS:
        return preset_grid(grid)
    return grid if isinstance(grid, GridSpec) else load_grid(grid)


def study(task: Task | str, model: str | Model | None = None, *, grid: GridSpec | str | Path | None = None,
          methods: Sequence[str] | None = None, meta_model: str | Model | None = None,
          cot_tokens: int | None = None, halving: bool = False, eta: int = 3, min_slice: int = 10,
          seed: int = 0, run_dir: str | Path = "runs", cache: bool | str | Path | CallCache | None = True,
          scoring: ScoringMode = "auto", calibration: str = DEFAULT_CALIBRATION,
          progress: bool = True) -> StudyResult:
    """Hand grid vs optimizers at the same budget, after Battle & Gollapudi (2024, arXiv 2402.10949).

    >>> import prompthone as ph                                                        # doctest: +SKIP
    >>> result = ph.study("gen:sentiment_templates", methods=["ape", "opro"])       # doctest: +SKIP
    >>> print(result.optimizers[0].ranking.describe())                                # doctest: +SKIP

    `grid`: our default lists (5 openers × 3 task lines × 4 closers), a `GridSpec`, a YAML file, or a preset's
    name (`grid.PRESETS`: "battle-gollapudi", whose methods and `cot_tokens` are the defaults when not given;
    without a preset they are ape and 64). Each combination is scored with and without chain-of-thought
    (`cot_tokens` of reasoning; 0 leaves CoT out).
    `halving` scores all variants on a dev slice and keeps the top 1/`eta` per rung, growing the slice until
    the whole dev split (the first slice holds at least `min_slice` examples). `methods` are specs as in
    `compare` (`apo:selector=ucb`); each runs with `seed` and a budget of as many model calls as the grid made.
    `meta_model` defaults as in `optimize` (`api.default_meta_model`: the strongest embedded model installed when
    the task model is embedded, else the task model); the one used is recorded (`meta_model` of the config and
    the result). `calibration` ("none", "contextual", "batch"; label scoring only) is estimated for every hand
    prompt before it is scored (its calls are part of the grid's spend, so of the optimizers' budget) and passed
    to every optimizer, so hand and optimized prompts are ranked on the same calibrated scores.
    """
    spec = resolve_grid(grid)  # a bad grid file fails before any model loads
    preset = preset_of(spec)
    if methods is None:
        methods = preset.methods if preset else ("ape",)
    if cot_tokens is None:
        cot_tokens = preset.cot_tokens if preset else DEFAULT_COT_TOKENS
    specs = [MethodSpec.parse(m) for m in methods]
    if any(s.method == "seed" for s in specs):
        raise ConfigError("'seed' is not an optimizer here: the seed prompt is the grid's all-none, direct combo")
    check_calibration(calibration)
    task_obj = load_task(task, seed=seed) if isinstance(task, str) else task
    variants = expand_grid(spec, cot_tokens=cot_tokens)
    task_model, meta = _models(model, meta_model)
    call_cache = resolve_cache(cache)
    config = _config(task_obj, spec, specs, task_model, meta, cot_tokens, halving, eta, min_slice, seed, scoring,
                     calibration)
    with group_run("study", task_obj, config, root=run_dir, seed=seed) as (group, stored):
        path = group.path
        outcome = evaluate_grid(task_obj, variants, task_model, cot_tokens=cot_tokens, cache=call_cache,
                                scoring=scoring, halving=halving, eta=eta, min_slice=min_slice,
                                rng=random.Random(seed), calibration=calibration, progress=progress)
        files = write_table(path, outcome.rows)
        notes = list(outcome.notes)
        title = f"{task_obj.name} on {task_model.id}: dev score of {len(variants)} hand prompts"
        plot_note = plot_heatmap(outcome.rows, spec, path / "heatmap.png", title=title)
        if plot_note is None:
            files["heatmap"] = str(path / "heatmap.png")
        else:
            notes.append(plot_note)
        best_hand = outcome.rows[0]
        best_prompt = variants[best_hand.index].prompt(task_obj, cot_tokens)
        best_test = _test_score(task_obj, replace(best_prompt, calibration=best_hand.calibration), task_model,
                                call_cache, scoring)
        if len(variants) > 1:
            notes.append(winners_curse_note(len(variants), best_hand.n, best_hand.dev_score, best_test))
        full_dev = [r.dev_score for r in outcome.full_dev_rows]
        optimizers = []
        for method in specs:
            optimizers.append(_run_optimizer(task_obj, method, task_model, meta, outcome.calls, seed, group,
                                             call_cache, scoring, calibration, progress, full_dev, len(variants)))
            done = optimizers[-1]
            group.member({"label": done.label, "run_id": done.run_id, "dev_score": done.dev_score,
                          "test_score": done.test_score, "rank": done.ranking.rank})
        result = StudyResult(task=task_obj.name, model=task_model.id, meta_model=meta.id, grid=spec,
                             cot_tokens=cot_tokens, seed=seed, grid_outcome=outcome, best_hand=best_hand,
                             best_hand_test_score=best_test, optimizers=optimizers, run_dir=str(path), files=files,
                             notes=notes)
        files["summary"] = str(write_summary(path, result))
        files["study"] = str(path / "study.json")
        (path / "study.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str)
                                         + "\n", encoding="utf-8")
        stored.update(result.to_dict())
    return result


def winners_curse_note(variants: int, n_dev: int, dev: float, test: float) -> str:
    """Why the best hand prompt's dev score overstates it: the maximum of many noisy scores on one small dev set is
    biased upward (the winner's curse), more so the more variants and the fewer examples; its test score, on examples
    nothing was chosen on, is the estimate to compare."""
    return (f"the best hand prompt is the best of {variants} variants on {n_dev} dev examples, so its dev score "
            f"({dev:.3f}) is biased upward (winner's curse); its test score ({test:.3f}) is the estimate to compare")


def _models(model: str | Model | None, meta_model: str | Model | None) -> tuple[Model, Model]:
    """The task model and the meta model: the one named, else `api.default_meta_model`'s, else the task model."""
    task_model = resolve_model(model)
    chosen = meta_model if meta_model is not None else default_meta_model(model)
    return task_model, resolve_model(chosen) if chosen is not None else task_model


def _test_score(task: Task, prompt: Prompt, model: Model, cache: CallCache | None, scoring: ScoringMode) -> float:
    """The best hand prompt on test (with the prior estimated for it on the grid, if any), counted apart from the
    grid (like an optimizer's final scoring)."""
    if not task.test:
        return math.nan
    return Session(cache=cache).evaluator(task, model, role="final", mode=scoring).evaluate(prompt, task.test).score


def _run_optimizer(task: Task, method: MethodSpec, model: Model, meta: Model, calls: int, seed: int, group: GroupRun,
                   cache: CallCache | None, scoring: ScoringMode, calibration: str, progress: bool,
                   full_dev: list[float], n_combos: int) -> OptimizerOutcome:
    started = time.monotonic()
    result = optimize(task, method=method.method, model=model, meta_model=meta, budget=Budget(calls=calls),
                      seed=seed, options=dict(method.options), run_dir=group.root, store=group.store, cache=cache,
                      scoring=scoring, calibration=calibration, progress=progress)
    return OptimizerOutcome(label=method.label, method=method.method, options=result.options, budget_calls=calls,
                            dev_score=result.best_dev_score, test_score=result.test_score,
                            ranking=rank_among(result.best_dev_score, full_dev, n_combos),
                            best_prompt=result.best_prompt, spend=result.spend, final_spend=result.final_spend,
                            stopped_reason=result.stopped_reason, wall_time_s=round(time.monotonic() - started, 3),
                            run_dir=result.run_dir, run_id=member_id(result))


def _config(task: Task, grid: GridSpec, methods: list[MethodSpec], model: Model, meta: Model, cot_tokens: int,
            halving: bool, eta: int, min_slice: int, seed: int, scoring: str, calibration: str) -> dict[str, Any]:
    return {"task": {"name": task.name, "metric": task.metric, "labels": task.labels,
                     "sizes": {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)}},
            "grid": grid.to_dict(), "cot_tokens": cot_tokens,
            "halving": {"eta": eta, "min_slice": min_slice} if halving else None,
            "methods": [m.label for m in methods], "task_model": model.id, "meta_model": meta.id, "seed": seed,
            "scoring": scoring, "calibration": calibration,
            "versions": {"prompthone": __version__, "python": platform.python_version()}}


__all__ = ["HandVariant", "OptimizerOutcome", "StudyResult", "study"]
