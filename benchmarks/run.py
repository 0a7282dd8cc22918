"""prompthone benchmarks: every number is a ratio against a baseline measured in the same run.

    python -m benchmarks.run            # full (a few minutes on 2 cores)
    python -m benchmarks.run --quick    # a small version (the smoke test runs this)

Sections: (1) evaluator overhead vs calling llama.cpp directly with the same requests, (2) label scoring
vs generate-and-parse (speed and accuracy), (3) KV prefix reuse vs full re-evaluation, (4) a cached re-run
vs the first run. Results go to <out>/results.json and <out>/results.md. No assertions on time; the run
exits non-zero only on a correctness failure (a cached re-run that makes new calls, or prefix reuse that
changes scores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import prompthone as ph
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import ScoringRequest
from prompthone.models.llamacpp import LlamaCppModel, load_embedded
from prompthone.prompts.prompt import INPUT_PREFIX, Prompt, render
from prompthone.tasks.example import Example, Task

console = Console()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _seed_prompt(task: Task) -> Prompt:
    return Prompt(task.instruction, output_format=task.output_format)


def _evaluator(task: Task, model: LlamaCppModel, mode: str) -> Evaluator:
    return Evaluator(task, MeteredModel(model, meter=BudgetMeter(), cache=None), mode=mode)  # type: ignore[arg-type]


def _examples(task: Task, n: int) -> list[Example]:
    return list(task.dev + task.test)[:n]


def evaluator_overhead(model: LlamaCppModel, task: Task, n: int) -> dict[str, Any]:
    """Evaluator throughput vs the same requests sent straight to llama_cpp.Llama (no cache, no budget)."""
    prompt, examples = _seed_prompt(task), _examples(task, n)
    llm = model._llm
    labels = tuple(task.labels or ())
    label_ids = [model._tokens_of(label)[0] for label in labels]

    def direct_labels() -> list[str]:
        # The leanest equivalent: reuse the KV prefix, read the last logits, compare each label's first token.
        out = []
        for e in examples:
            tokens = model.tokenize_prompt(render(prompt, e.input))
            common = 0
            for a, b in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
                if a != b:
                    break
                common += 1
            llm.n_tokens = min(common, len(tokens) - 1)
            llm.eval(tokens[llm.n_tokens:])
            logits = model._last_logprobs()
            out.append(labels[int(np.argmax([logits[i] for i in label_ids]))])
        return out

    def direct_generate() -> list[str]:
        out = []
        for e in examples:
            text, stops = model.render_chat(render(prompt, e.input))
            tokens = llm.tokenize(text.encode(), add_bos=True, special=True)
            reply: Any = llm.create_completion(prompt=tokens, max_tokens=64, temperature=0.0,
                                               stop=[*stops, f"\n{INPUT_PREFIX}"])
            out.append(reply["choices"][0]["text"])
        return out

    result: dict[str, Any] = {"task": task.name, "n": len(examples)}
    for mode, direct in (("labels", direct_labels), ("generate", direct_generate)):
        evaluator = _evaluator(task, model, mode)
        evaluator.evaluate(prompt, examples[:2])  # warm-up
        _, t_ours = _timed(lambda ev=evaluator: ev.evaluate(prompt, examples))
        _, t_direct = _timed(direct)
        result[mode] = {"ours_s": t_ours, "direct_s": t_direct, "throughput_ratio": t_direct / t_ours}
    return result


def labels_vs_generate(model: LlamaCppModel, tasks: Sequence[Task], n: int) -> list[dict[str, Any]]:
    """The same seed prompt scored by label log-probabilities and by generate-and-parse."""
    rows = []
    for task in tasks:
        prompt, examples = _seed_prompt(task), _examples(task, n)
        row: dict[str, Any] = {"task": task.name, "n": len(examples)}
        for mode in ("labels", "generate"):
            evaluator = _evaluator(task, model, mode)
            res, seconds = _timed(lambda ev=evaluator, p=prompt, xs=examples: ev.evaluate(p, xs))
            row[mode] = {"accuracy": res.score, "seconds": seconds, "examples_per_s": len(examples) / seconds}
        row["speed_ratio"] = row["labels"]["examples_per_s"] / row["generate"]["examples_per_s"]
        rows.append(row)
    return rows


def prefix_reuse(model: LlamaCppModel, task: Task, n: int) -> dict[str, Any]:
    """Label scoring with the KV prefix kept between examples vs a full re-evaluation of every prompt."""
    prompt = _seed_prompt(task)
    requests = [ScoringRequest(render(prompt, e.input), tuple(task.labels or ())) for e in _examples(task, n)]

    def fresh() -> list[tuple[float, ...]]:
        out = []
        for r in requests:
            model._llm.n_tokens = 0
            out.append(next(model.score([r]))[1].logprobs)
        return out

    reused, t_reused = _timed(lambda: [s.logprobs for _, s in model.score(requests)])
    full, t_full = _timed(fresh)
    diff = max(abs(a - b) for x, y in zip(reused, full, strict=True) for a, b in zip(x, y, strict=True))
    return {"task": task.name, "n": len(requests), "reuse_s": t_reused, "full_s": t_full,
            "speedup": t_full / t_reused, "max_abs_logprob_diff": diff}


def cached_rerun(model: LlamaCppModel, task: Task, budget: int) -> dict[str, Any]:
    """A seeded APE run twice with the same cache: wall-time ratio and new calls on the second run."""
    options = {"num_subsamples": 2, "num_prompts_per_subsample": 3, "eval_samples": 16, "mc_rounds": 1,
               "mc_top_k": 2, "mc_samples_per_prompt": 2}
    with tempfile.TemporaryDirectory() as tmp:
        def run() -> ph.OptimizationResult:
            return ph.optimize(task, method="ape", model=model, budget=budget, options=options, seed=0,
                               run_dir=Path(tmp) / "runs", cache=Path(tmp) / "calls.sqlite", progress=False)

        first, t_first = _timed(run)
        second, t_second = _timed(run)
    return {"task": task.name, "budget": budget, "first_s": t_first, "second_s": t_second,
            "wall_ratio": t_second / t_first, "first_new_calls": first.spend["new_calls"],
            "second_new_calls": second.spend["new_calls"] + second.final_spend["new_calls"],  # type: ignore[operator]
            "same_best_prompt": first.best_prompt == second.best_prompt}


def _markdown(results: dict[str, Any]) -> str:
    o = results["evaluator_overhead"]
    lines = ["| benchmark | ratio | detail |", "|---|---|---|"]
    for mode in ("labels", "generate"):
        m = o[mode]
        lines.append(f"| evaluator vs direct llama.cpp ({mode}, {o['task']}, n={o['n']}) | "
                     f"{m['throughput_ratio']:.2f}× throughput | "
                     f"ours {m['ours_s']:.2f}s, direct {m['direct_s']:.2f}s |")
    for r in results["labels_vs_generate"]:
        lines.append(f"| label scoring vs generate-and-parse ({r['task']}, n={r['n']}) | {r['speed_ratio']:.1f}× "
                     f"faster | accuracy {r['labels']['accuracy']:.3f} vs {r['generate']['accuracy']:.3f} |")
    p = results["prefix_reuse"]
    lines.append(f"| KV prefix reuse vs full re-evaluation ({p['task']}, n={p['n']}) | {p['speedup']:.2f}× faster | "
                 f"{p['reuse_s']:.2f}s vs {p['full_s']:.2f}s, max abs Δ logprob {p['max_abs_logprob_diff']:.1e} |")
    c = results["cached_rerun"]
    lines.append(f"| cached re-run vs first run (APE, budget {c['budget']}) | {c['wall_ratio']:.3f}× wall time | "
                 f"{c['first_s']:.1f}s vs {c['second_s']:.2f}s; new calls {c['first_new_calls']} then "
                 f"{c['second_new_calls']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    n = 12 if args.quick else 48
    model = load_embedded()
    sentiment = ph.load_task("examples/sentiment.jsonl")
    tasks = [sentiment] if args.quick else [sentiment, ph.load_task("gen:sentiment_templates"),
                                           ph.load_task("gen:boolean_expressions")]
    results: dict[str, Any] = {"quick": args.quick, "model": model.id}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("evaluator_overhead", lambda: evaluator_overhead(model, sentiment, n)),
        ("labels_vs_generate", lambda: labels_vs_generate(model, tasks, n)),
        ("prefix_reuse", lambda: prefix_reuse(model, sentiment, n)),
        ("cached_rerun", lambda: cached_rerun(model, sentiment, 40 if args.quick else 120)),
    ]
    for name, step in steps:
        with console.status(f"benchmark: {name}"):
            results[name] = step()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table_md = _markdown(results)
    (args.out / "results.md").write_text(table_md)
    table = Table(title="prompthone benchmarks (ratios measured in one run)")
    for col in ("benchmark", "ratio", "detail"):
        table.add_column(col)
    for line in table_md.splitlines()[2:]:
        table.add_row(*[cell.strip() for cell in line.strip("|").split("|")])
    console.print(table)
    failures = []
    if results["cached_rerun"]["second_new_calls"] != 0:
        failures.append("the cached re-run made new model calls")
    if not math.isfinite(results["prefix_reuse"]["max_abs_logprob_diff"]) or \
            results["prefix_reuse"]["max_abs_logprob_diff"] > 1e-2:
        failures.append("prefix reuse changed the label scores")
    for failure in failures:
        console.print(f"[bold red]correctness failure:[/] {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
