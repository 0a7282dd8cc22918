"""What the dashboard shows, read from the run store as plain JSON-ready data (the pages and the API share it).

Everything here only reads. A run is read call by call, each its own transaction: while a run is going, its
candidates and steps may be one step apart, and the next refresh catches up. Values are made JSON-safe
(`plain`): NaN (a split never scored) becomes None, datetimes ISO text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from prompthone.errors import PrompthoneError, StoreError
from prompthone.report.data import RunData
from prompthone.report.from_store import run_data_from_store
from prompthone.report.summary import parents, score, score_keys, spend, summary
from prompthone.store import RunRecord, RunStore

#: characters of an instruction shown in a table
PREVIEW_CHARS = 160
#: the filters of the runs page, in order
FILTERS = ("status", "method", "task")


class NotFound(PrompthoneError):
    """A run or candidate the store does not hold (HTTP 404)."""


def plain(value: Any) -> Any:
    """`value` with NaN/inf as None and datetimes as ISO text, ready for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def find_run(store: RunStore, run_id: str) -> RunRecord:
    """The run's record; NotFound (with the store's hint of recent ids) when there is no such run."""
    try:
        return store.get_run(run_id)
    except StoreError as exc:
        if str(exc).startswith(f"no run {run_id!r}"):
            raise NotFound(str(exc)) from None
        raise


def run_row(record: RunRecord) -> dict[str, Any]:
    """A run as the runs page lists it (scores from its final result: None while it runs)."""
    result = record.result or {}
    return {"id": record.id, "method": record.method, "task": record.task, "status": record.status,
            "seed": record.seed, "best_dev": score(result.get("best_dev_score")),
            "test": score(result.get("test_score")),
            "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat(),
            "finished_at": record.finished_at.isoformat() if record.finished_at else None}


def list_view(store: RunStore, filters: dict[str, str | None]) -> dict[str, Any]:
    """Runs newest first, those matching every given filter; and each filter's choices (from all runs)."""
    records = store.list_runs()
    wanted = {k: v for k, v in filters.items() if k in FILTERS and v}
    rows = [run_row(r) for r in records if all(getattr(r, k) == v for k, v in wanted.items())]
    choices = {k: sorted({getattr(r, k) for r in records}) for k in FILTERS}
    return {"store": store.url, "filters": {k: wanted.get(k) for k in FILTERS}, "choices": choices,
            "total": len(records), "runs": rows}


def load_run(store: RunStore, run_id: str, record: RunRecord | None = None) -> RunData:
    """A run as the report reads it: record, candidates and steps (events and per-example data are not loaded)."""
    return run_data_from_store(store, run_id, record=record or find_run(store, run_id), details=False)


def run_view(store: RunStore, run_id: str) -> dict[str, Any]:
    """One run: its summary, every candidate (a table row each), its steps and the score-per-step figure."""
    from prompthone.dashboard.figures import run_figure

    record = find_run(store, run_id)
    run = load_run(store, run_id, record)
    info = summary(run)
    best, seed = info["best"], info["seed_id"]
    keys = score_keys(run)
    rows = spend(run).rows
    overview = {**run_row(record), **{k: info[k] for k in (
        "models", "stopped_reason", "seed_dev", "best_dev", "seed_test", "best_test", "steps", "wall_time_s",
        "seed_id", "rank_key")}, "test": info["best_test"], "n_candidates": info["candidates"],
        "best": asdict(best), "calls": rows[-1].values["calls"] if rows else None,
        "tokens": rows[-1].values["tokens"] if rows else None, "usd": rows[-1].cost if rows else None,
        "spend": [asdict(row) for row in rows]}
    return plain({
        "run": overview, "score_keys": keys,
        "candidates": [candidate_row(cid, cand, seed, best.id) for cid, cand in sorted(run.candidates.items())],
        "steps": [step_row(s) for s in run.steps], "figure": run_figure(run, info)})


def candidate_row(cid: int, cand: dict[str, Any], seed: int | None, best: int | None) -> dict[str, Any]:
    """A candidate as the run page's table shows it: scores by key and a short preview of its prompt."""
    prompt = cand.get("prompt") or {}
    return {"id": cid, "origin": cand.get("origin"), "parent": cand.get("parent"), "parents": parents(cand),
            "step": cand.get("step"), "scores": {k: score(v) for k, v in (cand.get("scores") or {}).items()},
            "preview": preview(prompt.get("instruction")), "system": preview(prompt.get("system")),
            "demos": len(prompt.get("demos") or []), "is_seed": cid == seed, "is_best": cid == best}


def step_row(record: dict[str, Any]) -> dict[str, Any]:
    used = record.get("spend") or {}
    return {"step": record.get("step"), "best_id": record.get("best_id"), "best_score": score(record.get("best_score")),
            "calls": used.get("calls"), "elapsed_s": record.get("elapsed_s")}


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """The text on one line, cut at `limit` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """Score keys with the final splits first (test, dev), then the others by name."""
    found = set(keys)
    return [k for k in ("test", "dev") if k in found] + sorted(found - {"test", "dev"})
