"""The study's files: the full table (table.csv, table.json) and a markdown summary (summary.md)."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompthone.grid_study.evaluate import HandRow
from prompthone.grid_study.grid import short
from prompthone.grid_study.halving import Rung

if TYPE_CHECKING:
    from prompthone.grid_study.runner import StudyResult

TABLE_COLUMNS = ("rank", "opener", "task_line", "closer", "cot", "dev_score", "n", "calls", "pruned_at_rung",
                 "rung_scores", "system")


def table_record(row: HandRow) -> dict[str, Any]:
    """One table row as written to JSON ("none" parts are empty strings; survivors have no pruning rung)."""
    return {"rank": row.rank, "opener": row.opener, "task_line": row.task_line, "closer": row.closer,
            "cot": row.cot, "dev_score": row.dev_score, "n": row.n, "calls": row.calls,
            "pruned_at_rung": row.pruned_at, "rung_scores": list(row.rung_scores), "system": row.system or ""}


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return ";".join(f"{x:.4f}" for x in value) if isinstance(value, list) else value


def write_table(directory: Path, rows: Sequence[HandRow]) -> dict[str, str]:
    """table.csv and table.json, best first; returns their paths by name."""
    records = [table_record(r) for r in rows]
    csv_path, json_path = directory / "table.csv", directory / "table.json"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in records)
    json_path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"table_csv": str(csv_path), "table_json": str(json_path)}


def rung_line(rung: Rung) -> str:
    """'rung 0: 120 variants on 12 dev examples, 40 promoted, 80 pruned' (the last rung promotes all)."""
    pruned = len(rung.arms) - len(rung.promoted)
    return (f"rung {rung.index}: {len(rung.arms)} variants on {rung.size} dev examples, "
            + (f"{len(rung.promoted)} promoted, {pruned} pruned" if pruned else "final"))


def marginal_means(rows: Sequence[HandRow], *, first_rung: bool = False) -> dict[str, list[tuple[str, float, int]]]:
    """Mean dev score per level of each part (and per answering mode): which choices help on average.

    `first_rung` averages every variant's score on the first halving slice, the one slice all were scored on
    (survivors' full-dev scores and pruned variants' slice scores would not compare).
    """
    levels: dict[str, dict[str, list[float]]] = {"opener": {}, "task line": {}, "closer": {}, "answering": {}}
    for r in sorted(rows, key=lambda row: row.index):  # levels in the grid's own order
        score = r.rung_scores[0] if first_rung and r.rung_scores else r.dev_score
        for part, value in (("opener", short(r.opener)), ("task line", short(r.task_line)),
                            ("closer", short(r.closer)), ("answering", "CoT" if r.cot else "direct")):
            levels[part].setdefault(value, []).append(score)
    return {part: [(k, statistics.fmean(v), len(v)) for k, v in by.items()] for part, by in levels.items()}


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def summary_markdown(result: StudyResult, top: int = 10) -> str:
    """The summary: settings, spend, the top combos, each part's mean effect, and the optimizers' ranks."""
    g = result.grid_outcome
    spend = g.spend
    lines = [f"# Study: {result.task} on {result.model}", "",
             f"Hand grid ({result.grid.source}): {len(result.grid.openers)} openers × {len(result.grid.task_lines)} "
             f"task lines × {len(result.grid.closers)} closers = {result.grid.size} system messages, "
             f"{len(g.rows)} variants with CoT ({result.cot_tokens} reasoning tokens) and without; "
             f"dev split: {g.n_dev} examples; scoring: {g.scoring_mode}; calibration: {g.calibration}; "
             f"meta model: {result.meta_model}; seed {result.seed}.", "",
             f"Grid spend: {spend['calls']} model calls ({spend['new_calls']} new, {spend['cache_hits']} cached), "
             f"{spend['tokens']} tokens, {g.wall_time_s:.1f} s."]
    if g.halving is not None:
        lines.append(f"Successive halving (eta {g.halving['eta']}, {g.halving['rungs']} rungs, slices "
                     f"{', '.join(str(r.size) for r in g.rungs)}): {g.calls_saved} calls saved of "
                     f"{g.full_grid_calls} for the full grid; {len(g.full_dev_rows)} variants reached the whole "
                     f"dev split.")
        lines += [""] + [f"- {rung_line(r)}" for r in g.rungs]
    lines += ["", f"## Top {min(top, len(g.rows))} hand prompts (dev)", "",
              "| rank | opener | task line | closer | answering | dev | n |", "|---|---|---|---|---|---|---|"]
    for r in g.rows[:top]:
        lines.append(f"| {r.rank} | {short(r.opener)} | {short(r.task_line)} | {short(r.closer)} | "
                     f"{'CoT' if r.cot else 'direct'} | {_fmt(r.dev_score)} | {r.n} |")
    first_rung = len(g.rungs) > 1
    lines += ["", "## Mean dev score per choice", ""]
    if first_rung:
        lines += [f"On the first halving slice ({g.rungs[0].size} dev examples), the one slice every variant was "
                  "scored on.", ""]
    for part, levels in marginal_means(g.rows, first_rung=first_rung).items():
        cells = "; ".join(f"{name}: {_fmt(mean)} ({n})" for name, mean, n in levels)
        lines.append(f"- {part}: {cells}")
    lines += ["", "## Optimizers at the grid's budget", "",
              f"Best hand prompt: dev {_fmt(result.best_hand.dev_score)}, test {_fmt(result.best_hand_test_score)} "
              f"(system: {result.best_hand.system or '(none)'}; {'CoT' if result.best_hand.cot else 'direct'}).", "",
              "| method | budget (calls) | calls used | dev | rank among hand prompts | test | best hand test | "
              "wall s |", "|---|---|---|---|---|---|---|---|"]
    for o in result.optimizers:
        lines.append(f"| {o.label} | {o.budget_calls} | {o.spend['calls']} | {_fmt(o.dev_score)} | "
                     f"{o.ranking.describe()} | {_fmt(o.test_score)} | {_fmt(result.best_hand_test_score)} | "
                     f"{o.wall_time_s:.1f} |")
    for o in result.optimizers:
        lines.append(f"\n{o.label} instruction: {o.best_prompt.instruction!r}"
                     + (f"; system: {o.best_prompt.system!r}" if o.best_prompt.system else ""))
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_summary(directory: Path, result: StudyResult) -> Path:
    path = directory / "summary.md"
    path.write_text(summary_markdown(result), encoding="utf-8")
    return path
