"""prompthone benchmarks: every number is a ratio against a baseline measured in the same run.

    python -m benchmarks.run                 # full: a few minutes on 2 cores
    python -m benchmarks.run --quick         # small sizes, under a minute (the e2e smoke test runs this)
    python -m benchmarks.run --tasks gen:sentiment_templates examples/sentiment.jsonl --out /tmp/bench

Sections: (1) Evaluator overhead vs calling llama.cpp directly with the same requests, (2) label scoring vs
generate-and-parse (speed and accuracy), (3) KV prefix reuse vs full re-evaluation, (4) a cached re-run of
a seeded APE run vs the first run. Sections 1, 3 and 4 use the first task. Results go to <out>/results.json
(every number) and <out>/results.md (the summary table). Nothing about time is asserted; the exit status
is 1 only on a correctness failure: the cached re-run made new model calls, prefix reuse changed a score
by more than 1e-4, or a measurement came out NaN/inf.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

import prompthone as ph
from benchmarks import report, sections
from benchmarks.harness import evaluator, seed_prompt, timed, warm_up_example
from prompthone.errors import PrompthoneError
from prompthone.models.llamacpp import LlamaCppModel, load_embedded
from prompthone.tasks.example import Task

DEFAULT_TASKS = ("examples/sentiment.jsonl", "gen:sentiment_templates", "gen:boolean_expressions")
NOTE = ("Ratios compare runs made back to back in one process on one model instance; absolute seconds are "
        "context only (noisy on a shared machine).")


@dataclass(frozen=True)
class Sizes:
    """How much each section does. `None` examples means all of dev+test."""

    overhead_examples: int
    overhead_repeats: int
    compare_examples: int | None
    reuse_examples: int
    reuse_repeats: int
    reuse_demos: int
    ape_budget: int


FULL = Sizes(overhead_examples=32, overhead_repeats=2, compare_examples=None, reuse_examples=32,
             reuse_repeats=2, reuse_demos=4, ape_budget=120)
QUICK = Sizes(overhead_examples=8, overhead_repeats=1, compare_examples=8, reuse_examples=8,
              reuse_repeats=1, reuse_demos=2, ape_budget=30)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"),
                        help="where results.json and results.md go (default: benchmarks/out)")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), metavar="SPEC",
                        help="task specs with a label set (files, gen:<name>, bbh:<name>); the first one is "
                             f"used by sections 1, 3 and 4 (default: {' '.join(DEFAULT_TASKS)})")
    return parser.parse_args(argv)


def _load_tasks(specs: Sequence[str]) -> list[Task]:
    """The tasks, each with a label set (label scoring, the subject of three sections, needs one)."""
    tasks = []
    for spec in specs:
        task = ph.load_task(spec)
        if not task.labels:
            raise PrompthoneError(f"benchmark task {spec!r} has no label set; pick a classification task")
        tasks.append(task)
    return tasks


def _warm_up(model: LlamaCppModel, task: Task) -> float:
    """One generation and one label score before anything is timed (first calls pay for allocations)."""
    prompt, example = seed_prompt(task), [warm_up_example(task)]

    def both() -> None:
        evaluator(task, model, "generate").evaluate(prompt, example)
        evaluator(task, model, "labels").evaluate(prompt, example)

    return timed(both)[1]


def _correctness_failures(results: dict[str, Any]) -> list[str]:
    failures = []
    if results["cached_rerun"]["second_new_calls"] != 0:
        calls = results["cached_rerun"]["second_new_calls"]
        failures.append(f"the cached re-run made {calls} new model calls "
                        "(expected 0: cache keys or run determinism are broken)")
    for row in results["prefix_reuse"]["rows"]:
        if not row["within_1e-4"]:
            failures.append("prefix reuse changed label log-probabilities by "
                            f"{row['max_abs_logprob_diff']:.2e} ({row['prompt']})")
    e = results["prefix_reuse"]["exact_repeat"]
    if not e["within_1e-4"]:
        failures.append(f"an exact repeat of a scoring request moved label log-probs by "
                        f"{e['max_abs_logprob_diff']:.2e} ({e['prediction_flips']} of {e['n']} predictions flipped)")
    bad = report.non_finite_numbers(results)
    if bad:
        failures.append(f"non-finite numbers in the results: {', '.join(bad)}")
    return failures


def _warnings(results: dict[str, Any]) -> list[str]:
    """Baseline mismatches and backend quirks: worth seeing, but not failures of the library's contract."""
    o = results["evaluator_overhead"]
    out = []
    if not o["generate"]["identical_outputs"]:
        out.append("the evaluator and direct create_completion generated different texts from one prompt")
    if not o["labels"]["identical_predictions"]:
        out.append("evaluator and the direct label loop predicted different labels")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped or captured: rich would wrap the table at 80 columns
        console = Console(width=180)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    try:
        tasks = _load_tasks(args.tasks)
    except PrompthoneError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    model, load_s = timed(load_embedded)
    first = tasks[0]
    results: dict[str, Any] = {
        "quick": args.quick, "sizes": asdict(sizes), "tasks": [t.name for t in tasks], "model": model.id,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "prompthone": ph.__version__, "model_load_s": load_s,
        "warm_up_s": _warm_up(model, first)}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("evaluator_overhead", lambda: sections.evaluator_overhead(model, first, sizes.overhead_examples,
                                                                   sizes.overhead_repeats)),
        ("labels_vs_generate", lambda: sections.labels_vs_generate(model, tasks, sizes.compare_examples)),
        ("prefix_reuse", lambda: sections.prefix_reuse(model, first, sizes.reuse_examples,
                                                       sizes.reuse_repeats, sizes.reuse_demos)),
        ("cached_rerun", lambda: sections.cached_rerun(model, first, sizes.ape_budget)),
    ]
    for name, step in steps:
        with console.status(f"benchmark: {name}"):
            results[name], seconds = timed(step)
        console.print(f"[dim]{name}: {seconds:.1f} s[/]")
    model.close()
    results["total_s"] = time.perf_counter() - started
    rows = report.summary_rows(results)
    failures = _correctness_failures(results)
    results["correctness_failures"] = failures
    results["warnings"] = _warnings(results)
    report.write(args.out, results, report.markdown(rows, NOTE))
    report.print_table(console, rows, f"prompthone benchmarks{' (quick)' if args.quick else ''}: "
                                      f"ratios vs baselines in the same run, {os.cpu_count()} CPUs")
    console.print(f"{NOTE}\nTotal {results['total_s']:.0f} s. Results: {args.out / 'results.json'}")
    for warning in results["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    for failure in failures:
        console.print(f"[bold red]correctness failure:[/] {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
