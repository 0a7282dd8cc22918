"""Several runs side by side: each one's best-so-far score per step on one chart, final scores and spend in a table.

A step record k is written after k iterations and carries the method's best so far by its own ranking score
(`best_score`; OPRO ranks by its train sample, GEPA by its Pareto set, ...): the curve is its running maximum,
so methods are compared on the same footing only through the table's final dev and test scores.
"""

from __future__ import annotations

from typing import Any

from prompthone.dashboard.data import find_run, plain, run_row
from prompthone.report.data import RunData
from prompthone.report.summary import rank_key, score
from prompthone.store import RunStore

#: a comparison needs at least this many runs
MIN_RUNS = 2


def compare_view(store: RunStore, run_ids: list[str]) -> dict[str, Any]:
    """The runs (in the order given, each once), their curves, and the comparison figure."""
    from prompthone.dashboard.figures import compare_figure

    runs = []
    for n, run_id in enumerate(dict.fromkeys(run_ids), 1):
        record = find_run(store, run_id)
        steps = store.steps(run_id)
        result = record.result or {}
        key = rank_key(RunData(run_id=record.id, status=record.status, config=record.config, candidates={},
                               steps=[], result=record.result))
        spend = result.get("spend") or (steps[-1].get("spend") if steps else None) or {}
        final = result.get("final_spend") or {}
        runs.append({**run_row(record), "label": f"R{n}", "rank_key": key, "steps": len(steps),
                     "n_candidates": result.get("n_candidates"), "seed_dev": score(result.get("seed_dev_score")),
                     "seed_test": score(result.get("seed_test_score")), "search_calls": spend.get("calls"),
                     "final_calls": final.get("calls"), "tokens": _total(spend, final, "tokens"),
                     "usd": _total(spend, final, "usd"),
                     "wall_time_s": result.get("wall_time_s"), "stopped_reason": result.get("stopped_reason"),
                     "curve": best_so_far(steps)})
    return plain({"runs": runs, "figure": compare_figure(runs)})


def best_so_far(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{step, calls, best}] after each recorded step: the running maximum of the step's `best_score`."""
    curve: list[dict[str, Any]] = []
    best: float | None = None
    for record in steps:
        value, step = score(record.get("best_score")), record.get("step")
        if value is None or not isinstance(step, int):
            continue
        best = value if best is None else max(best, value)
        curve.append({"step": step, "calls": (record.get("spend") or {}).get("calls"), "best": best})
    return curve


def _total(a: dict[str, Any], b: dict[str, Any], field: str) -> float | None:
    """The search's and the finalization's `field` together (None when neither has it: no money without prices)."""
    values = [d[field] for d in (a, b) if isinstance(d.get(field), int | float) and not isinstance(d[field], bool)]
    return sum(values) if values else None
