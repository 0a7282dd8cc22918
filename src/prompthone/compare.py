"""`compare`: several methods on one task, same models, same splits, same budget, several seeds, one table.

Every method gets the same budget of task-model calls (`Budget(task_calls=...)`): what a user pays for in
evaluation. Meta-model calls, tokens and wall time are reported beside it. The task's splits are fixed
once; the seed changes only the search. `seed` is the unoptimized seed prompt, scored on the same test split.

Per method the summary gives the mean test score over seeds with its 95% interval (`score_interval`: over
seeds and test examples where the runs' per-example outcomes are known) and the method's best prompts against the
seed prompt on the same test examples, pair by pair (`vs_seed`).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from prompthone.api import default_meta_model, evaluate, optimize, resolve_cache, resolve_model
from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.evaluator import EvalResult
from prompthone.evaluation.prices import Price, prices_by_role
from prompthone.evaluation.statistics import (
    CONFIDENCE,
    PairedComparison,
    PairStatistic,
    mean_over_runs_and_examples,
    paired_comparison,
)
from prompthone.models.base import Model
from prompthone.optimizers import get_method
from prompthone.optimizers.base import ScoreKey
from prompthone.prompts.calibration import DEFAULT_CALIBRATION, check_calibration
from prompthone.run.group import GroupRun, group_run, member_id
from prompthone.run.results import OptimizationResult
from prompthone.store.db import RunStore
from prompthone.tasks.example import Task
from prompthone.tasks.metrics import get_metric

#: the methods `compare` runs when none are named: ProTeGi under each of its bandits, and its paper's main baseline,
#: Monte-Carlo search (`apo:n_gradients=0`: paraphrases only, as the reference runs it)
DEFAULT_METHODS = ("seed", "auto", "ape", "opro", "apo:selector=ucb", "apo:selector=ucb-e",
                   "apo:selector=successive-rejects", "apo:selector=successive-halving",
                   "apo:selector=brute-force", "apo:n_gradients=0")

#: the seed prompt's candidate id in every run (the first candidate a run makes)
SEED_CANDIDATE_ID = 0


@dataclass(frozen=True)
class MethodSpec:
    """A method and its knobs, written `name` or `name:key=value,key=value`."""

    label: str
    method: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> MethodSpec:
        name, _, rest = text.strip().partition(":")
        options: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"method spec {text!r}: expected key=value after ':', got {pair!r}")
            options[key.strip()] = value.strip()
        if name != "seed":
            get_method(name).from_options(options)  # fail before any run starts
        return cls(text.strip(), name, options)


@dataclass(frozen=True)
class RunOutcomes:
    """One run's per-example test scores and predictions, in the test split's order: its best prompt's and the
    seed prompt's (for the `seed` method both are the seed prompt's)."""

    best: tuple[float, ...]
    seed: tuple[float, ...]
    best_predictions: tuple[str | None, ...] = ()
    seed_predictions: tuple[str | None, ...] = ()


@dataclass
class ComparisonRow:
    """One method on one seed (`test_outcomes`, per example, feeds the summary and is left out of `record`)."""

    label: str
    seed: int
    test_score: float
    dev_score: float
    task_calls: int
    meta_calls: int
    tokens: int
    wall_time_s: float
    run_dir: str | None = None
    run_id: str | None = None
    usd: float | None = None
    test_outcomes: RunOutcomes | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The row as compare.json and the group's member events hold it (without the per-example outcomes)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "test_outcomes"}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> list[float] | None:
    """The t interval of the mean of `values` (one per seed): mean ± t(n-1) · sd/√n; None for a single value,
    whose spread over seeds is unknown."""
    if len(values) < 2:
        return None
    mean, sd = _mean_std(values)
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return [mean - half, mean + half]


def vs_seed(rows: Sequence[ComparisonRow], task: Task | None = None) -> PairedComparison | None:
    """A method's best prompts against the seed prompt on the same test examples, over all its seeds.

    Each seed's run gives a per-example difference (its best prompt − the seed prompt). The difference reported
    is their mean over seeds; its interval is `paired_comparison`'s paired bootstrap over test examples, with one
    resample of examples applied to every seed at once: per example the scores are averaged over seeds first,
    then the examples are resampled. The p-value is the sign-flip permutation test of the mean (McNemar when the
    averages are 0/1) of those per-example averages, so it agrees with the interval: the examples are the
    independent units, whereas pooling the seeds' pairs would count each example once per seed and overstate the
    evidence. For a metric that is not a mean of per-example scores (macro-F1, needs `task`), each resample
    recomputes the metric per seed and averages it over seeds.
    None when a row has no per-example test outcomes (no test split).
    """
    outcomes = [r.test_outcomes for r in rows]
    if not outcomes or any(o is None or not o.best for o in outcomes):
        return None
    have = [o for o in outcomes if o is not None]
    if len({len(o.best) for o in have} | {len(o.seed) for o in have}) != 1:
        raise ValueError("every run's test outcomes must cover the same test examples")
    statistic = None
    if task is not None and not get_metric(task.metric).is_mean:
        statistic = _metric_over_seeds(have, task)
    return compare_runs([o.best for o in have], [o.seed for o in have], statistic=statistic)


def compare_runs(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], *,
                 statistic: PairStatistic | None = None) -> PairedComparison:
    """Two groups of runs scored on the same test examples (each a list of per-example scores), paired example by
    example: per example each group's mean over its runs, then `paired_comparison` (the examples are the
    independent units; see `vs_seed`). The groups may hold different numbers of runs."""
    return paired_comparison(np.mean(a, axis=0).tolist(), np.mean(b, axis=0).tolist(), statistic=statistic)


def _metric_over_seeds(outcomes: Sequence[RunOutcomes], task: Task) -> PairStatistic:
    """statistic(indices) -> (mean over seeds of the best prompts' metric, of the seed prompts') on those examples."""
    metric = get_metric(task.metric)
    targets = [e.target for e in task.test]
    if any(len(o.best_predictions) != len(targets) or len(o.seed_predictions) != len(targets) for o in outcomes):
        raise ValueError(f"metric {task.metric} needs every run's test predictions, one per test example")

    def statistic(idx: np.ndarray) -> tuple[float, float]:
        t = [targets[i] for i in idx]
        best = [metric.aggregate([o.best_predictions[i] for i in idx], t, task.labels) for o in outcomes]
        seed = [metric.aggregate([o.seed_predictions[i] for i in idx], t, task.labels) for o in outcomes]
        return statistics.fmean(best), statistics.fmean(seed)

    return statistic


def score_interval(rows: Sequence[ComparisonRow], task: Task | None = None) -> list[float] | None:
    """The 95% interval of a method's mean test score over its runs (`rows`).

    Where every run has per-example test outcomes and the metric is their mean: the two-way bootstrap over runs and
    examples (`statistics.mean_over_runs_and_examples`), which counts the test set's sampling too and stays
    within the scores' range. Otherwise the t interval over the runs' scores (`mean_interval`; None for one run).
    """
    outcomes = [r.test_outcomes.best if r.test_outcomes else () for r in rows]
    mean_metric = task is None or get_metric(task.metric).is_mean
    if mean_metric and all(outcomes) and len({len(o) for o in outcomes}) == 1:
        _, low, high = mean_over_runs_and_examples(outcomes)
        return [low, high]
    return mean_interval([r.test_score for r in rows])


def summarize(rows: Sequence[ComparisonRow], task: Task | None = None) -> list[dict[str, Any]]:
    """Per method: mean ± std of test and dev scores, the test mean's 95% interval (`test_ci95`, see
    `score_interval`), the paired comparison with the seed prompt (`vs_seed`, see `vs_seed`), and mean calls,
    tokens and wall time. `task` gives the metric (a per-example mean when omitted)."""
    out = []
    for label in dict.fromkeys(r.label for r in rows):
        mine = [r for r in rows if r.label == label]
        test, test_sd = _mean_std([r.test_score for r in mine])
        dev, dev_sd = _mean_std([r.dev_score for r in mine])
        paired = vs_seed(mine, task)
        out.append({"method": label, "seeds": len(mine), "test_mean": test, "test_std": test_sd,
                    "test_ci95": score_interval(mine, task), "dev_mean": dev, "dev_std": dev_sd,
                    "vs_seed": None if paired is None else paired.to_dict(),
                    "task_calls": statistics.fmean(r.task_calls for r in mine),
                    "meta_calls": statistics.fmean(r.meta_calls for r in mine),
                    "tokens": statistics.fmean(r.tokens for r in mine),
                    "usd": statistics.fmean(costs) if (costs := [r.usd for r in mine if r.usd is not None]) else None,
                    "wall_time_s": statistics.fmean(r.wall_time_s for r in mine)})
    return out


def tokens_cell(s: dict[str, Any]) -> str:
    """ "12345", or "12345 · $0.0123" when the models have prices (`evaluation.prices`)."""
    return f"{s['tokens']:.0f}" + (f" · ${s['usd']:.4f}" if s.get("usd") is not None else "")


def mean_cell(s: dict[str, Any]) -> str:
    """ "0.600 (0.473 … 0.727)", or "0.600 (1 seed: no interval)"."""
    ci = s.get("test_ci95")
    if ci is None:
        return f"{s['test_mean']:.3f} ({s['seeds']} seed: no interval)"
    return f"{s['test_mean']:.3f} ({ci[0]:.3f} … {ci[1]:.3f})"


def vs_seed_cell(s: dict[str, Any]) -> str:
    """ "+0.120 (+0.050 … +0.190), p=0.003", or "no significant difference: ..." when the interval holds 0."""
    if s.get("vs_seed") is None:
        return "n/a (no test outcomes)"
    if s["method"] == "seed":
        return "— (the seed prompt)"
    return PairedComparison.from_dict(s["vs_seed"]).cell("no significant difference")


def markdown(summary: Sequence[dict[str, Any]], header: str) -> str:
    columns = ("| method | test mean (95% CI) | test std | vs seed (paired, 95% CI, p) | dev (mean ± std) | "
               "task calls | meta calls | tokens | wall s |")
    lines = [header, "", columns, "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['method']} | {mean_cell(s)} | {s['test_std']:.3f} | {vs_seed_cell(s)} | "
                     f"{s['dev_mean']:.3f} ± {s['dev_std']:.3f} | {s['task_calls']:.0f} | {s['meta_calls']:.0f} | "
                     f"{tokens_cell(s)} | {s['wall_time_s']:.1f} |")
    return "\n".join(lines) + "\n"


def compare(task: Task, methods: Sequence[str] = DEFAULT_METHODS, *, model: str | Model | None = None,
            meta_model: str | Model | None = None, task_calls: int = 400, seeds: Sequence[int] = (0, 1, 2),
            run_dir: str | Path = "runs", cache: bool | str | Path | None = True,
            calibration: str = DEFAULT_CALIBRATION, progress: bool = True,
            prices: Mapping[str, Price] | None = None) -> tuple[list[ComparisonRow], Path]:
    """Run every method on every seed under the same task-call budget; write compare.json and compare.md.

    The meta model defaults as in `optimize` (`api.default_meta_model`); `calibration` applies to every method and
    to the `seed` row alike, so the seed is the one every run starts from. `prices` (model spec → `Price`) adds
    each method's mean cost in money beside its tokens.

    The comparison is a run of the store under `run_dir` (method `compare`, see `run.group`) and every
    optimization in it is a run of that store too, listed by `prompthone runs` and resumable on its own.
    """
    specs = [MethodSpec.parse(m) for m in methods]
    if not specs or not seeds:
        raise ConfigError("compare needs at least one method and one seed")
    check_calibration(calibration)
    task_model = resolve_model(model)
    if meta_model is None:
        meta_model = default_meta_model(model)
    meta = resolve_model(meta_model) if meta_model is not None else task_model
    call_cache = resolve_cache(cache)
    by_role = prices_by_role(prices, (model if isinstance(model, str) else None, task_model.id),
                             (meta_model if isinstance(meta_model, str) else None, meta.id))
    by_id = {m.id: by_role[role] for role, m in (("meta", meta), ("task", task_model)) if role in by_role}
    config = {"methods": [s.label for s in specs], "task_calls": task_calls, "seeds": list(seeds),
              "task_model": task_model.id, "meta_model": meta.id, "calibration": calibration}
    rows: list[ComparisonRow] = []
    with group_run("compare", task, config, root=run_dir, seed=seeds[0]) as (group, result):
        for spec in specs:
            for seed in seeds:
                row = _run_one(task, spec, seed, task_model, meta, task_calls, group, call_cache, calibration,
                               progress, by_id)
                rows.append(row)
                group.member(row.record())
        summary = summarize(rows, task)
        result.update({"task": task.name, "task_calls": task_calls, "seeds": list(seeds),
                       "rows": [r.record() for r in rows], "summary": summary})
        path = group.path
        (path / "compare.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        header = (f"{task.name}: {len(seeds)} seeds, budget {task_calls} task-model calls, task model "
                  f"{task_model.id}, meta model {meta.id}")
        (path / "compare.md").write_text(markdown(summary, header), encoding="utf-8")
    return rows, path


def _run_one(task: Task, spec: MethodSpec, seed: int, model: Model, meta: Model, task_calls: int, group: GroupRun,
             cache: Any, calibration: str, progress: bool, prices: dict[str, Price]) -> ComparisonRow:
    started = time.monotonic()
    if spec.method == "seed":
        dev = evaluate(task, None, model, split="dev", cache=cache, calibration=calibration)
        test = evaluate(task, None, model, split="test", cache=cache, calibration=calibration)
        seed_outcomes = _outcomes_of(test)
        outcomes = RunOutcomes(seed_outcomes[0], seed_outcomes[0], seed_outcomes[1], seed_outcomes[1])
        return ComparisonRow(spec.label, seed, test.score, dev.score, 0, 0, 0,
                             round(time.monotonic() - started, 3), test_outcomes=outcomes if task.test else None)
    result = optimize(task, method=spec.method, model=model, meta_model=meta, budget=Budget(task_calls=task_calls),
                      seed=seed, options=dict(spec.options), run_dir=group.root, store=group.store, cache=cache,
                      calibration=calibration, progress=progress, prices=prices)
    by_role: dict[str, int] = result.spend["by_role"]  # type: ignore[assignment]
    usd = result.spend.get("usd")
    return ComparisonRow(spec.label, seed, result.test_score, result.best_dev_score, by_role.get("task", 0),
                         by_role.get("meta", 0), int(result.spend["tokens"]),  # type: ignore[call-overload]
                         result.wall_time_s, result.run_dir, member_id(result),
                         float(usd) if isinstance(usd, int | float) else None,
                         test_outcomes=_run_test_outcomes(task, result, group.store, model, cache))


Outcomes = tuple[tuple[float, ...], tuple[str | None, ...]]


def _outcomes_of(result: EvalResult) -> Outcomes:
    return tuple(r.score for r in result.examples), tuple(r.prediction for r in result.examples)


def _run_test_outcomes(task: Task, result: OptimizationResult, store: RunStore, model: Model,
                       cache: Any) -> RunOutcomes | None:
    """The per-example test outcomes of a run's best and seed prompts, as its finalization recorded them in the
    store (no model calls); a prompt the store has no test record of is scored through the cache instead. None
    when the run scored nothing on test (no test split, or interrupted before its final scoring)."""
    if not task.test or math.isnan(result.test_score):
        return None
    run_id = member_id(result)
    pairs = []
    for cand_id, prompt in ((result.best_candidate_id, result.best_prompt), (SEED_CANDIDATE_ID, result.seed_prompt)):
        stored = _stored_test_outcomes(store, run_id, cand_id, task)
        pairs.append(stored or _outcomes_of(evaluate(task, prompt, model, split="test", cache=cache)))
    (best, best_pred), (seed, seed_pred) = pairs
    return RunOutcomes(best, seed, best_pred, seed_pred)


def _stored_test_outcomes(store: RunStore, run_id: str | None, cand_id: int, task: Task) -> Outcomes | None:
    """A candidate's test scores and predictions from the store, in the test split's order (None: not all there).
    The store keeps one row per example content (`Example.key`), so copies of an example share it."""
    if run_id is None:
        return None
    rows = {e["hash"]: e for e in store.evaluations(run_id, cand_id, ScoreKey.TEST)}
    if any(e.key not in rows for e in task.test):
        return None
    return (tuple(float(rows[e.key]["score"]) for e in task.test),
            tuple(rows[e.key]["prediction"] for e in task.test))
