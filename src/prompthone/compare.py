"""`compare`: several methods on one task, same models, same splits, same budget, several seeds, one table.

Every method gets the same budget of task-model calls (`Budget(task_calls=...)`): what a user pays for in
evaluation. Meta-model calls, tokens and wall time are reported beside it. The task's splits are fixed
once; the seed changes only the search. `seed` is the unoptimized seed prompt, scored on the same test split.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompthone.api import evaluate, optimize, resolve_cache, resolve_model
from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.models.base import Model
from prompthone.optimizers import get_method
from prompthone.run.group import GroupRun, group_run, member_id
from prompthone.tasks.example import Task

DEFAULT_METHODS = ("seed", "ape", "opro", "apo:selector=ucb", "apo:selector=ucb-e",
                   "apo:selector=successive-rejects", "apo:selector=successive-halving",
                   "apo:selector=brute-force")


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


@dataclass
class ComparisonRow:
    """One method on one seed."""

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


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: Sequence[ComparisonRow]) -> list[dict[str, Any]]:
    """Per method: mean ± std of test and dev scores, mean calls, tokens and wall time."""
    out = []
    for label in dict.fromkeys(r.label for r in rows):
        mine = [r for r in rows if r.label == label]
        test, test_sd = _mean_std([r.test_score for r in mine])
        dev, dev_sd = _mean_std([r.dev_score for r in mine])
        out.append({"method": label, "seeds": len(mine), "test_mean": test, "test_std": test_sd, "dev_mean": dev,
                    "dev_std": dev_sd, "task_calls": statistics.fmean(r.task_calls for r in mine),
                    "meta_calls": statistics.fmean(r.meta_calls for r in mine),
                    "tokens": statistics.fmean(r.tokens for r in mine),
                    "wall_time_s": statistics.fmean(r.wall_time_s for r in mine)})
    return out


def markdown(summary: Sequence[dict[str, Any]], header: str) -> str:
    columns = "| method | test (mean ± std) | dev (mean ± std) | task calls | meta calls | tokens | wall s |"
    lines = [header, "", columns, "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['method']} | {s['test_mean']:.3f} ± {s['test_std']:.3f} | {s['dev_mean']:.3f} ± "
                     f"{s['dev_std']:.3f} | {s['task_calls']:.0f} | {s['meta_calls']:.0f} | {s['tokens']:.0f} | "
                     f"{s['wall_time_s']:.1f} |")
    return "\n".join(lines) + "\n"


def compare(task: Task, methods: Sequence[str] = DEFAULT_METHODS, *, model: str | Model | None = None,
            meta_model: str | Model | None = None, task_calls: int = 400, seeds: Sequence[int] = (0, 1, 2),
            run_dir: str | Path = "runs", cache: bool | str | Path | None = True,
            progress: bool = True) -> tuple[list[ComparisonRow], Path]:
    """Run every method on every seed under the same task-call budget; write compare.json and compare.md.

    The comparison is a run of the store under `run_dir` (method `compare`, see `run.group`) and every
    optimization in it is a run of that store too, listed by `prompthone runs` and resumable on its own.
    """
    specs = [MethodSpec.parse(m) for m in methods]
    if not specs or not seeds:
        raise ConfigError("compare needs at least one method and one seed")
    task_model = resolve_model(model)
    meta = resolve_model(meta_model) if meta_model is not None else task_model
    call_cache = resolve_cache(cache)
    config = {"methods": [s.label for s in specs], "task_calls": task_calls, "seeds": list(seeds),
              "task_model": task_model.id, "meta_model": meta.id}
    rows: list[ComparisonRow] = []
    with group_run("compare", task, config, root=run_dir, seed=seeds[0]) as (group, result):
        for spec in specs:
            for seed in seeds:
                row = _run_one(task, spec, seed, task_model, meta, task_calls, group, call_cache, progress)
                rows.append(row)
                group.member(asdict(row))
        result.update({"task": task.name, "task_calls": task_calls, "seeds": list(seeds),
                       "rows": [asdict(r) for r in rows], "summary": summarize(rows)})
        path = group.path
        (path / "compare.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        header = (f"{task.name}: {len(seeds)} seeds, budget {task_calls} task-model calls, task model "
                  f"{task_model.id}, meta model {meta.id}")
        (path / "compare.md").write_text(markdown(summarize(rows), header), encoding="utf-8")
    return rows, path


def _run_one(task: Task, spec: MethodSpec, seed: int, model: Model, meta: Model, task_calls: int, group: GroupRun,
             cache: Any, progress: bool) -> ComparisonRow:
    started = time.monotonic()
    if spec.method == "seed":
        dev = evaluate(task, None, model, split="dev", cache=cache)
        test = evaluate(task, None, model, split="test", cache=cache)
        return ComparisonRow(spec.label, seed, test.score, dev.score, 0, 0, 0,
                             round(time.monotonic() - started, 3))
    result = optimize(task, method=spec.method, model=model, meta_model=meta, budget=Budget(task_calls=task_calls),
                      seed=seed, options=dict(spec.options), run_dir=group.root, store=group.store, cache=cache,
                      progress=progress)
    by_role: dict[str, int] = result.spend["by_role"]  # type: ignore[assignment]
    return ComparisonRow(spec.label, seed, result.test_score, result.best_dev_score, by_role.get("task", 0),
                         by_role.get("meta", 0), int(result.spend["tokens"]),  # type: ignore[call-overload]
                         result.wall_time_s, result.run_dir, member_id(result))
