"""Who is who in a run (method, models, the seed and the best candidate, the ranking key) and what it cost."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prompthone.evaluation.statistics import PairedComparison
from prompthone.report.data import RunData
from prompthone.run.config import RunConfig

#: the spend counters a report shows, in order, with their column headings
SPEND_FIELDS = (("calls", "calls"), ("new_calls", "new calls"), ("cache_hits", "cache hits"),
                ("prompt_tokens", "prompt tokens"), ("completion_tokens", "completion tokens"),
                ("tokens", "tokens"), ("new_tokens", "new tokens"))
#: where a run carries what it cost in dollars (`usd`: at the prices the user gave; no price ships with prompthone)
COST_FIELDS = ("usd", "cost_usd", "cost")


@dataclass(frozen=True)
class Best:
    """The candidate the report calls best: finalization's winner, or while running the method's current best."""

    id: int | None
    final: bool
    how: str


@dataclass(frozen=True)
class SpendRow:
    label: str
    values: dict[str, int]
    cost: float | None


@dataclass(frozen=True)
class Spend:
    """Search, finalization and total spend; calls by role; dollars where the run carries them, else why not; and
    what each server backend did (`faults`: role → requests, retries, failures and the faults by kind)."""

    rows: list[SpendRow]
    roles: dict[str, dict[str, int]]
    cost_note: str | None
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)


def method_name(run: RunData) -> str:
    found = RunConfig.from_dict(run.config).method or (run.result or {}).get("method")
    if not found:
        found = next((e["method"] for e in run.events if isinstance(e.get("method"), str)), None)
    return str(found or "unknown")


def task_name(run: RunData) -> str:
    task = run.config.get("task")
    name = RunConfig.from_dict(run.config).task.name if isinstance(task, dict) and task.get("name") else None
    return str(name or (run.result or {}).get("task") or "unknown task")


def model_ids(run: RunData) -> list[str]:
    """The task model, then the meta model when it differs."""
    return RunConfig.from_dict(run.config).models()


def score(value: Any) -> float | None:
    """A score as a float, or None when missing or NaN (unscored)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def parents(cand: dict[str, Any]) -> list[int]:
    """A candidate's parents: `data.parents` when recorded (GEPA merges have two), else its one parent."""
    data = cand.get("data") or {}
    listed = data.get("parents") if isinstance(data, dict) else None
    if isinstance(listed, list) and listed:
        return [int(p) for p in listed]
    return [] if cand.get("parent") is None else [int(cand["parent"])]


def rank_key(run: RunData) -> str | None:
    """The score key the method ranks by: the registered method's, else the key whose value the steps report."""
    from prompthone.errors import ConfigError
    from prompthone.optimizers import get_method

    try:
        return get_method(method_name(run)).rank_key
    except ConfigError:
        pass
    votes: Counter[str] = Counter()
    for step in run.steps:
        cand = run.candidates.get(step.get("best_id"))  # type: ignore[arg-type]
        if cand is not None and score(step.get("best_score")) is not None:
            votes.update(k for k, v in cand.get("scores", {}).items() if v == step["best_score"])
    if votes:
        return votes.most_common(1)[0][0]
    keys = score_keys(run)
    return keys[0] if keys else None


def score_keys(run: RunData) -> list[str]:
    """Every score key a candidate carries, in first-seen order, with the final 'dev' and 'test' last."""
    seen = dict.fromkeys(k for c in sorted(run.candidates.items()) for k in c[1].get("scores", {}))
    return [k for k in seen if k not in ("dev", "test")] + [k for k in ("dev", "test") if k in seen]


def seed_id(run: RunData) -> int | None:
    seeds = [i for i, c in run.candidates.items() if c.get("origin") == "seed"]
    return min(seeds) if seeds else min(run.candidates, default=None)


def best(run: RunData) -> Best:
    """Finalization's winner (result.json); without a result, the last step's best, else the top by rank key."""
    if run.result is not None and isinstance(run.result.get("best_candidate_id"), int):
        return Best(run.result["best_candidate_id"], True, "the best on the full dev split at finalization")
    key = rank_key(run)
    for step in reversed(run.steps):
        if isinstance(step.get("best_id"), int):
            return Best(step["best_id"], False, f"the method's current best by '{key}'")
    scored = [(s, -i) for i, c in run.candidates.items() if (s := score(c.get("scores", {}).get(key))) is not None]
    if scored:
        return Best(-max(scored)[1], False, f"the top candidate by '{key}' so far")
    return Best(None, False, "no candidate is scored yet")


def spend(run: RunData) -> Spend:
    """The search's spend (the result's, else the last step's), finalization's, and their total."""
    result = run.result or {}
    search = result.get("spend") or (run.steps[-1].get("spend") if run.steps else None)
    parts = [(label, part) for label, part in (("search", search), ("final scoring", result.get("final_spend")))
             if isinstance(part, dict)]
    rows = [SpendRow(label, {k: int(part.get(k) or 0) for k, _ in SPEND_FIELDS}, _cost(part)) for label, part in parts]
    if len(rows) > 1:
        costs = [r.cost for r in rows]
        rows.append(SpendRow("total", {k: sum(r.values[k] for r in rows) for k, _ in SPEND_FIELDS},
                             None if None in costs else sum(c for c in costs if c is not None)))
    roles: dict[str, dict[str, int]] = {}
    for label, part in parts:
        for role, calls in (part.get("by_role") or {}).items():
            roles.setdefault(str(role), {})[label] = int(calls)
    known = any(r.cost is not None for r in rows) or score(result.get("cost_usd")) is not None
    note = None if known else f"no prices known for {', '.join(model_ids(run)) or 'this run’s models'}"
    return Spend(rows, roles, note, server_faults(run))


def server_faults(run: RunData) -> dict[str, dict[str, Any]]:
    """The server backends' counts (the result's, else the last step's) by role, with the faults spelled out."""
    from prompthone.progress import fault_kinds

    backend = (run.result or {}).get("backend") or (run.steps[-1].get("backend") if run.steps else None)
    if not isinstance(backend, dict):
        return {}
    return {str(role): {"requests": int(stats.get("requests", 0)), "retries": int(stats.get("retries", 0)),
                        "failures": int(stats.get("failures", 0)),
                        "kinds": ", ".join(f"{k}×{n}" for k, n in fault_kinds(stats).items()) or "none"}
            for role, stats in backend.items() if isinstance(stats, dict)}


def _cost(part: dict[str, Any]) -> float | None:
    return next((c for k in COST_FIELDS if (c := score(part.get(k))) is not None), None)


def summary(run: RunData) -> dict[str, Any]:
    """The facts of the report's top line."""
    result = run.result or {}
    seed, top = seed_id(run), best(run)
    seed_scores = run.candidates.get(seed, {}).get("scores", {}) if seed is not None else {}
    best_scores = run.candidates.get(top.id, {}).get("scores", {}) if top.id is not None else {}
    totals = spend(run).rows
    return {
        "method": method_name(run), "task": task_name(run), "models": model_ids(run), "status": run.status,
        "stopped_reason": result.get("stopped_reason"), "run_id": run.run_id,
        "seed_dev": score(result.get("seed_dev_score", seed_scores.get("dev"))),
        "best_dev": score(result.get("best_dev_score", best_scores.get("dev"))),
        "seed_test": score(result.get("seed_test_score", seed_scores.get("test"))),
        "best_test": score(result.get("test_score", best_scores.get("test"))),
        "spend": totals[-1] if totals else None,
        "steps": result.get("steps", max((int(s.get("step", 0)) for s in run.steps), default=0)),
        "candidates": len(run.candidates), "wall_time_s": result.get("wall_time_s"),
        "best": top, "seed_id": seed, "rank_key": rank_key(run),
        "verdict": _verdict(result.get("test_comparison")),
    }


def _verdict(comparison: Any) -> str | None:
    """Best vs seed on test in words, from the run's paired comparison (runs before it was recorded: None)."""
    if not isinstance(comparison, dict):
        return None
    return PairedComparison.from_dict(comparison).describe()
