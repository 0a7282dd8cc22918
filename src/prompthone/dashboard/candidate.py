"""One candidate: its full prompt, its ancestry, its scores, and per example where it beat the seed prompt.

The seed prompt is candidate 0 (the first candidate of every run). Per score key the candidate was scored
under example by example (the store's evaluations), each example's score is set next to the seed's under the
same key: a win (higher), a loss (lower) or a tie; examples the seed was not scored on are `unpaired`.
"""

from __future__ import annotations

from typing import Any

from prompthone.dashboard.data import NotFound, find_run, ordered_keys, plain, run_row
from prompthone.report.summary import parents, score
from prompthone.store import RunStore

#: the seed prompt's candidate id in every run
SEED_ID = 0
_SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}


def candidate_view(store: RunStore, run_id: str, cand_id: int) -> dict[str, Any]:
    """Everything the candidate page shows about candidate `cand_id` of run `run_id`."""
    record = find_run(store, run_id)
    cands = store.candidates(run_id)
    if cand_id not in cands:
        have = f"its candidates are #{min(cands)}–#{max(cands)}" if cands else "it has no candidates yet"
        raise NotFound(f"run {run_id!r} has no candidate #{cand_id}: {have}")
    cand = cands[cand_id]
    seed = cands.get(SEED_ID)
    mine = store.evaluations(run_id, cand_id)
    theirs = store.evaluations(run_id, SEED_ID) if seed is not None and cand_id != SEED_ID else []
    examples = {e["hash"]: e for e in store.examples(run_id)} if mine else {}
    keys = ordered_keys(e["key"] for e in mine)
    return plain({
        "run": run_row(record),
        "candidate": {"id": cand_id, "origin": cand.get("origin"), "parent": cand.get("parent"),
                      "parents": parents(cand), "step": cand.get("step"), "prompt": cand.get("prompt") or {},
                      "scores": cand.get("scores") or {}, "n_scored": cand.get("n_scored") or {},
                      "data": cand.get("data") or {}},
        "seed": None if seed is None else {"id": SEED_ID, "scores": seed.get("scores") or {},
                                           "n_scored": seed.get("n_scored") or {}},
        "is_seed": cand_id == SEED_ID,
        "lineage": lineage(cands, cand_id),
        "children": sorted(cid for cid, c in cands.items() if cand_id in parents(c)),
        "comparisons": [example_outcomes(mine, theirs, examples, key, compared=cand_id != SEED_ID and seed is not None)
                        for key in keys],
    })


def lineage(cands: dict[int, dict[str, Any]], cand_id: int) -> list[dict[str, Any]]:
    """The candidate's ancestors by first parent, from the oldest down to its parent (a merge's other parent is
    listed with the child). An ancestor the store does not hold ends the chain, marked `missing`."""
    chain: list[dict[str, Any]] = []
    seen = {cand_id}
    ps = parents(cands[cand_id])
    while ps:
        pid = ps[0]
        if pid in seen:
            break
        seen.add(pid)
        if pid not in cands:
            chain.append({"id": pid, "origin": None, "step": None, "parents": [], "missing": True})
            break
        cand = cands[pid]
        ps = parents(cand)
        chain.append({"id": pid, "origin": cand.get("origin"), "step": cand.get("step"), "parents": ps,
                      "missing": False})
    return chain[::-1]


def example_outcomes(mine: list[dict[str, Any]], theirs: list[dict[str, Any]], examples: dict[str, dict[str, Any]],
                     key: str, *, compared: bool) -> dict[str, Any]:
    """Under `key`, each example the candidate was scored on with its prediction and score, next to the seed's.

    `compared` is False for the seed itself (or a run without one): rows then carry no outcome.
    """
    seed_rows = {e["hash"]: e for e in theirs if e["key"] == key} if compared else {}
    rows = []
    for e in (e for e in mine if e["key"] == key):
        ex = examples.get(e["hash"], {})
        other = seed_rows.get(e["hash"])
        mine_score = score(e["score"])
        seed_score = score(other["score"]) if other else None
        rows.append({"hash": e["hash"], "split": ex.get("split"), "index": ex.get("index"), "input": ex.get("input"),
                     "target": ex.get("target"), "prediction": e.get("prediction"), "score": mine_score,
                     "seed_prediction": other.get("prediction") if other else None, "seed_score": seed_score,
                     "outcome": _outcome(mine_score, seed_score) if compared else None})
    rows.sort(key=lambda r: (_SPLIT_ORDER.get(r["split"], 3), str(r["split"]),
                             r["index"] if isinstance(r["index"], int) else 1 << 30, r["hash"]))
    # the means are over the examples both were scored on (all of the candidate's when there is no comparison)
    paired = [r for r in rows if r["outcome"] in ("win", "loss", "tie")] if compared else rows
    counts = {name: sum(r["outcome"] == name for r in rows) for name in ("win", "loss", "tie", "unpaired")}
    return {"key": key, "compared": compared, "examples": len(rows), "wins": counts["win"],
            "losses": counts["loss"], "ties": counts["tie"], "unpaired": counts["unpaired"],
            "mean": _mean([r["score"] for r in paired]), "seed_mean": _mean([r["seed_score"] for r in paired]),
            "rows": rows}


def _outcome(mine: float | None, seed: float | None) -> str:
    if mine is None or seed is None:
        return "unpaired"
    return "win" if mine > seed else "loss" if mine < seed else "tie"


def _mean(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None
