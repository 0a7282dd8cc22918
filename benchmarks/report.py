"""Turn benchmark results into one summary: a row per ratio, printed with rich and written as markdown + JSON.

The terminal table and the markdown file are built from the same rows, so what is printed is what is saved.
"""

from __future__ import annotations

import json
import math
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = ("benchmark", "task, n", "ratio", "ours", "baseline (same run)", "check")


@dataclass(frozen=True)
class Row:
    """One line of the summary: a ratio with the absolute numbers it came from."""

    benchmark: str
    where: str
    ratio: str
    ours: str
    baseline: str
    check: str

    def cells(self) -> tuple[str, ...]:
        return tuple(str(cell) for cell in astuple(self))


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.1f} ex/s ({seconds:.2f} s)"


def _overhead_rows(o: dict[str, Any]) -> list[Row]:
    rows = []
    for mode in ("generate", "labels"):
        m = o[mode]
        if mode == "generate":
            check = f"same texts: {m['identical_outputs']}"
        else:
            check = (f"same predictions: {m['identical_predictions']}, "
                     f"max |Δ logp| {m['max_abs_logprob_diff']:.1e}")
        rows.append(Row(f"1. Evaluator({mode}) vs direct llama.cpp loop", f"{o['task']}, {o['n']}",
                        f"{m['throughput_ratio']:.2f}× ex/s", _rate(o["n"], m["ours_s"]),
                        f"{_rate(o['n'], m['baseline_s'])} + {m['baseline_prep_s']:.2f} s tokenizing", check))
    return rows


def summary_rows(results: dict[str, Any]) -> list[Row]:
    """The summary table: every ratio in `results`, ours first, the baseline it is divided by second."""
    rows = _overhead_rows(results["evaluator_overhead"])
    for r in results["labels_vs_generate"]:
        lab, gen = r["labels"], r["generate"]
        rows.append(Row("2. label scoring vs generate-and-parse", f"{r['task']}, {r['n']}",
                        f"{r['speed_ratio']:.2f}× ex/s",
                        f"{lab['examples_per_s']:.1f} ex/s, accuracy {lab['accuracy']:.3f}",
                        f"{gen['examples_per_s']:.1f} ex/s, accuracy {gen['accuracy']:.3f}",
                        f"{gen['unparsed']}/{r['n']} generated replies unparsed"))
    for p in results["prefix_reuse"]["rows"]:
        rows.append(Row(f"3. KV prefix reuse vs full re-evaluation ({p['prompt']}, "
                        f"~{p['prompt_tokens_mean']:.0f} prompt tokens)", f"{p['task']}, {p['n']}",
                        f"{p['speedup']:.2f}× faster", f"{p['ours_s']:.2f} s", f"{p['baseline_s']:.2f} s",
                        f"max |Δ logp| {p['max_abs_logprob_diff']:.1e} (≤ 1e-4: {p['within_1e-4']})"))
    e = results["prefix_reuse"]["exact_repeat"]
    rows.append(Row("3r. same scoring request twice in a row", f"{e['task']}, {e['n']}", "-",
                    "second (prefix fully cached)", "first",
                    f"max |Δ logp| {e['max_abs_logprob_diff']:.1e} (≤ 1e-4: {e['within_1e-4']}), "
                    f"{e['prediction_flips']} flips"))
    c = results["cached_rerun"]
    rows.append(Row(f"4. cached re-run vs first run (APE, budget {c['budget']}, seed 0)", f"{c['task']}, -",
                    f"{c['wall_ratio']:.4f}× wall time",
                    f"{c['second_s']:.3f} s, {c['second_new_calls']} new calls",
                    f"{c['first_s']:.1f} s, {c['first_new_calls']} new calls",
                    f"new calls on re-run must be 0: {c['second_new_calls'] == 0}; "
                    f"same result: {c['same_result']}"))
    return rows


def markdown(rows: list[Row], note: str) -> str:
    """A markdown table of `rows` with a one-line note under it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |" for row in rows]
    return "\n".join([*lines, "", note, ""])


def print_table(console: Console, rows: list[Row], title: str) -> None:
    table = Table(title=title, show_lines=True)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row.cells())
    console.print(table)


def non_finite_numbers(value: Any, path: str = "") -> list[str]:
    """Paths of every NaN/inf float in a nested result, so a broken measurement is never silently saved."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_numbers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite_numbers(v, f"{path}[{i}]")]
    return []


def write(out: Path, results: dict[str, Any], table_md: str) -> None:
    """results.json (every number) and results.md (the summary table) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(table_md)
