"""Scores over a run: each candidate's score per key and step, best-so-far curves, per-example wins and losses.

Steps count from 0: a candidate's `step` is the iteration it was made in (the seed and whatever a method makes
before its first iteration are at 0), and the driver's step record k (written after k iterations) is plotted
at step k - 1, next to the candidates that iteration made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prompthone.report.data import RunData
from prompthone.report.summary import score, score_keys

#: the splits a best-vs-seed comparison is made on, in order
COMPARED_KEYS = ("test", "dev")
NOT_RECORDED = "not recorded in this run"


@dataclass(frozen=True)
class ScorePoint:
    candidate: int
    step: int
    score: float


@dataclass(frozen=True)
class ExampleRow:
    """One example where the best prompt and the seed scored differently."""

    hash: str
    split: str
    index: int | None
    input: str | None
    target: str | None
    seed_prediction: str | None
    best_prediction: str | None
    seed_score: float
    best_score: float


@dataclass(frozen=True)
class Comparison:
    """Best vs seed on the examples of one score key that both were scored on; `note` says why there is none."""

    key: str
    compared: int = 0
    wins: tuple[ExampleRow, ...] = ()
    losses: tuple[ExampleRow, ...] = ()
    ties: int = 0
    note: str | None = None


def candidate_step(cand: dict[str, Any]) -> int:
    step = cand.get("step")
    return int(step) if isinstance(step, int) and not isinstance(step, bool) else 0


def score_points(run: RunData) -> dict[str, list[ScorePoint]]:
    """Per score key, every candidate scored under it, at the step it was made."""
    points: dict[str, list[ScorePoint]] = {key: [] for key in score_keys(run)}
    for cid, cand in sorted(run.candidates.items()):
        for key, value in cand.get("scores", {}).items():
            if (s := score(value)) is not None:
                points[key].append(ScorePoint(cid, candidate_step(cand), s))
    return {k: sorted(v, key=lambda p: (p.step, p.candidate)) for k, v in points.items() if v}


def last_step(run: RunData) -> int:
    made = [candidate_step(c) for c in run.candidates.values()]
    recorded = [int(s["step"]) - 1 for s in run.steps if isinstance(s.get("step"), int)]
    return max([0, *made, *recorded])


def best_so_far(points: list[ScorePoint], until: int) -> list[tuple[int, float]]:
    """The running maximum at each step from the first scored one to `until` (inclusive)."""
    if not points:
        return []
    curve: list[tuple[int, float]] = []
    best, i = float("-inf"), 0
    for step in range(points[0].step, max(until, points[-1].step) + 1):
        while i < len(points) and points[i].step <= step:
            best = max(best, points[i].score)
            i += 1
        curve.append((step, best))
    return curve


def method_best(run: RunData) -> list[tuple[int, float, int | None]]:
    """(step, score, candidate) of the method's own best after each iteration (steps.jsonl, rank key)."""
    out = []
    for s in run.steps:
        value = score(s.get("best_score"))
        if value is not None and isinstance(s.get("step"), int):
            out.append((int(s["step"]) - 1, value, s.get("best_id")))
    return out


def compare_examples(run: RunData, seed: int | None, best: int | None, key: str) -> Comparison:
    """Per example of `key`, the best prompt's score against the seed's: wins, losses, ties."""
    if not run.evaluations:
        return Comparison(key, note=f"per-example scores: {NOT_RECORDED}")
    if seed is None or best is None:
        return Comparison(key, note="no best candidate yet")
    if seed == best:
        return Comparison(key, note="the best prompt is the seed prompt: nothing to compare")
    by_hash: dict[int, dict[str, dict[str, Any]]] = {seed: {}, best: {}}
    for record in run.evaluations:
        if record.get("key") == key and record.get("candidate") in by_hash:
            by_hash[record["candidate"]][record["hash"]] = record
    if not by_hash[seed] or not by_hash[best]:
        missing = [n for n, c in (("the seed", seed), ("the best prompt", best)) if not by_hash[c]]
        verb = "have" if len(missing) > 1 else "has"
        return Comparison(key, note=f"{' and '.join(missing)} {verb} no per-example '{key}' scores "
                                    "recorded in this run")
    examples: dict[str, dict[str, Any]] = {}
    for e in run.examples:  # an example in two splits (a duplicate in the data): the split of `key` first
        if e["hash"] not in examples or e.get("split") == key:
            examples[e["hash"]] = e
    wins: list[ExampleRow] = []
    losses: list[ExampleRow] = []
    ties = 0
    shared = [h for h in by_hash[seed] if h in by_hash[best]]
    for h in shared:
        s_rec, b_rec = by_hash[seed][h], by_hash[best][h]
        s, b = score(s_rec.get("score")) or 0.0, score(b_rec.get("score")) or 0.0
        if s == b:
            ties += 1
            continue
        ex = examples.get(h, {})
        row = ExampleRow(h, str(ex.get("split", key)), ex.get("index"), ex.get("input"), ex.get("target"),
                         s_rec.get("prediction"), b_rec.get("prediction"), s, b)
        (wins if b > s else losses).append(row)
    order = lambda r: (r.index if isinstance(r.index, int) else 1 << 30, r.hash)  # noqa: E731
    return Comparison(key, len(shared), tuple(sorted(wins, key=order)), tuple(sorted(losses, key=order)), ties)
