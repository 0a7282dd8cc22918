"""GREATER on the embedded model: cost per step, and GREATER vs the seed prompt, APO and APE on several tasks.

    python -m benchmarks.greater                      # 3 tasks, ~40 min on 2 cores
    python -m benchmarks.greater --quick              # 1 task, 1 step, tiny budgets (a smoke run, ~1.3 min)
    python -m benchmarks.greater --tasks gen:arithmetic --steps 20 --out benchmarks/out/greater
    python -m benchmarks.greater --from-raw           # rewrite the RESULTS.md section from results/greater.json

For each task: GREATER runs on SmolLM2 in torch (`local-torch`); APO and APE run on the same model in
llama.cpp (`local`) with call budgets (1500) that take about as long as GREATER on 2 cores; every winner is
scored on the test split.
GREATER's final prompt (the last one it moved to, whether or not the finalization preferred the seed on dev) is
scored on test on both backends: llama.cpp is the transfer, a backend it was not optimized on. The cost section
reads GREATER's per-step timings (events.jsonl) and the process's peak RSS, and prints a step's seconds as a ratio
to one plain evaluation of the seed prompt on the same training examples, measured in the same run. Nothing is
asserted about time: the exit status is 1 only if a run failed.

Every task runs in a subprocess of its own (`--one-task`), so its memory is its own: `greater_rss_mb` is the
subprocess's peak resident set after GREATER (the torch model and the search) and before the llama.cpp model for
APO and APE is loaded; `task_rss_mb` is its peak over the whole task. The rows of one invocation are saved as
`benchmarks/results/greater.json` (with the command and source commit) and the RESULTS.md section is written from
that file (`--from-raw` rewrites it without running anything).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import prompthone as ph
from benchmarks.results_md import add_raw_options, publish_raw, save_raw, stamp
from prompthone.tasks.example import Task

DEFAULT_TASKS = ("gen:sentiment_templates", "gen:boolean_expressions", "gen:arithmetic")
CACHE = "calls.sqlite"
RAW = Path(__file__).parent / "results" / "greater.json"


@dataclass(frozen=True)
class Plan:
    """How much each run does."""

    greater: dict[str, Any]
    baseline_budget: int
    limit: int | None
    own_meta: bool = False  # APO and APE propose with the task model itself (a quick run's speed), not the default


FULL = Plan(greater={"steps": 12, "n_train": 8, "reasoning_tokens": 48, "shortlist": 3, "dev_samples": 16,
                     "group_size": 3, "batch_size": 8}, baseline_budget=1500, limit=None)
QUICK = Plan(greater={"steps": 1, "n_train": 2, "reasoning_tokens": 8, "shortlist": 2, "dev_samples": 2,
                      "group_size": 2, "topq": 2, "batch_size": 2}, baseline_budget=10, limit=16, own_meta=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _run(task: Task, method: str, model: Any, out: Path, seed: int, **kwargs: Any) -> dict[str, Any]:
    started = time.monotonic()
    result = ph.optimize(task, method=method, model=model, seed=seed, run_dir=out / "runs", cache=out / CACHE,
                         progress=False, **kwargs)
    return {"method": method, "wall_s": round(time.monotonic() - started, 1), "seed_dev": result.seed_dev_score,
            "best_dev": result.best_dev_score, "seed_test": result.seed_test_score, "test": result.test_score,
            "calls": result.spend["calls"], "final_calls": result.final_spend["calls"],
            "prompt": result.best_prompt.to_dict(), "run_dir": result.run_dir}


def _cost(run_dir: str, seconds_per_eval: float) -> dict[str, Any]:
    events = [e for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()
              if "reasoning_s" in (e := json.loads(line))]  # GREATER's steps (not the run's estimate event)
    keys = ("reasoning_s", "candidates_s", "gradient_s", "rescoring_s")
    mean = {k: round(sum(e[k] for e in events) / len(events), 2) for k in keys}
    step = sum(mean.values())
    return {**mean, "step_s": round(step, 2), "step_over_one_eval": round(step / seconds_per_eval, 1),
            "changed_steps": sum(e["changed"] for e in events), "steps": len(events),
            "final_prompt": events[-1]["prompt"] if events else None}


def _found_prompt(task: Task, run_dir: str) -> ph.Prompt:
    """The last prompt GREATER moved to (candidates.jsonl holds every candidate; the highest id is the latest)."""
    latest: dict[int, dict[str, Any]] = {}
    for line in (Path(run_dir) / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["origin"].startswith("greater"):
            latest[record["id"]] = record
    return ph.Prompt.from_dict(latest[max(latest)]["prompt"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="GREATER steps (default: 12, quick: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/greater"))
    parser.add_argument("--one-task", help=argparse.SUPPRESS)  # the subprocess that runs one task
    add_raw_options(parser, RAW)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    options = {**plan.greater, **({"steps": args.steps} if args.steps else {})}
    if args.from_raw:
        print(_publish(json.loads(args.raw.read_text()), args.results_md))
        return 0
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.one_task:
        row = _one_task(args.one_task, plan, options, out, args.seed)
        (out / "row.json").write_text(json.dumps(row))
        return 0
    # A cold cache every run: GREATER's seconds per step must not count reasoning a previous run already paid for.
    (out / CACHE).unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    for name in args.tasks[:1] if args.quick else args.tasks:
        (out / "row.json").unlink(missing_ok=True)
        child = [sys.executable, "-m", "benchmarks.greater", "--one-task", name, "--out", str(out),
                 "--seed", str(args.seed), *(["--quick"] if args.quick else []),
                 *(["--steps", str(args.steps)] if args.steps else [])]
        proc = subprocess.run(child, check=False)
        row = (json.loads((out / "row.json").read_text()) if (out / "row.json").exists()
               else {"task": name, "error": f"the task's subprocess exited with {proc.returncode}"})
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("apo", "ape", "greater")}, indent=1), flush=True)
    raw = {"rows": rows, "options": options, "baseline_budget": plan.baseline_budget, "seed": args.seed}
    stamp(raw, "benchmarks.greater", argv)
    from importlib.metadata import version

    raw["versions"] += f"; torch {version('torch')}, transformers {version('transformers')}"
    if args.quick:
        print(table(rows))
    else:
        save_raw(raw, args.raw, indent=1)
        print(_publish(raw, args.results_md))
    return 1 if any("error" in r for r in rows) else 0


def _one_task(name: str, plan: Plan, options: dict[str, Any], out: Path, seed: int) -> dict[str, Any]:
    """One task's row (run in a subprocess of its own, so the peak RSS it reports is this task's alone)."""
    torch_model = ph.resolve_model("local-torch")
    task = ph.load_task(name, seed=seed, limit=plan.limit)
    # Baseline for the cost ratio: one plain evaluation of the seed prompt on as many training examples.
    train = task.train[: options["n_train"]]
    started = time.monotonic()
    ph.evaluate(replace(task, dev=train), split="dev", model=torch_model, cache=False)
    one_eval = time.monotonic() - started
    row: dict[str, Any] = {"task": name, "sizes": [len(task.train), len(task.dev), len(task.test)]}
    try:
        g = _run(task, "greater", torch_model, out, seed, options=options)
        row["greater"] = g
        row["cost"] = {**_cost(g["run_dir"], one_eval), "one_eval_s": round(one_eval, 2),
                       "greater_rss_mb": round(_peak_rss_mb())}
        # The prompt GREATER ended with (the finalization may have kept the seed), on both backends.
        found = _found_prompt(task, g["run_dir"])
        calls = out / CACHE
        test_torch = ph.evaluate(task, found, model=torch_model, split="test", cache=calls).score
        llama = ph.resolve_model("local")
        row["found"] = {"prompt": found.to_dict(), "test_torch": test_torch,
                        "test_llamacpp": ph.evaluate(task, found, model=llama, split="test", cache=calls).score}
        row["seed_test_llamacpp"] = ph.evaluate(task, model=llama, split="test", cache=calls).score
        for method in ("apo", "ape"):
            row[method] = _run(task, method, llama, out, seed, budget=plan.baseline_budget,
                               **({"meta_model": llama} if plan.own_meta else {}))
        row["cost"]["task_rss_mb"] = round(_peak_rss_mb())
    except Exception as exc:  # a failed run is reported, and the other tasks still run
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _publish(raw: dict[str, Any], results_md: Path) -> str:
    """Write the RESULTS.md section from the raw file; return the tables."""
    text = table(raw["rows"])
    setup = (f"Model: SmolLM2-135M-Instruct (the embedded GGUF): GREATER on `local-torch` (dequantized fp32, CPU), "
             f"APO and APE on `local` (llama.cpp) with {raw['baseline_budget']} calls each, seed {raw['seed']}. "
             f"GREATER options: {', '.join(f'{k}={v}' for k, v in raw['options'].items())} (other knobs at the "
             f"reference's defaults). Test scores; wall time and search calls in brackets. Each task ran in a "
             f"subprocess of its own: \"GREATER RSS\" is its peak resident memory after GREATER, \"task RSS\" over "
             f"the whole task (the llama.cpp model and APO/APE included). Raw rows: "
             f"`benchmarks/results/greater.json`.\n")
    publish_raw(results_md, "greater", "GREATER on the embedded model", raw, setup, text)
    return text


def table(rows: list[dict[str, Any]]) -> str:
    """The RESULTS.md table: test scores, wall time and calls per method; the transfer column; GREATER's cost."""
    lines = ["| task | seed (torch / llama.cpp) | GREATER's final prompt (torch / llama.cpp) | GREATER run's winner "
             "(torch) | APO (llama.cpp) | APE (llama.cpp) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['task']} | failed: {r['error']} | | | | |")
            continue
        f = r["found"]
        g, apo, ape = r["greater"], r["apo"], r["ape"]

        def cell(x: dict[str, Any]) -> str:
            return f"{x['test']:.3f} ({x['wall_s'] / 60:.1f} min, {x['calls']} calls)"

        lines.append(f"| {r['task']} | {g['seed_test']:.3f} / {r['seed_test_llamacpp']:.3f} | "
                     f"{f['test_torch']:.3f} / {f['test_llamacpp']:.3f} | {cell(g)} | {cell(apo)} | {cell(ape)} |")
    lines += ["", "| task | s/step | reasoning | candidates | gradient | re-scoring | step ÷ one eval | GREATER RSS "
                  "| task RSS |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "cost" in r:
            c = r["cost"]
            lines.append(f"| {r['task']} | {c['step_s']} | {c['reasoning_s']} | {c['candidates_s']} | "
                         f"{c['gradient_s']} | {c['rescoring_s']} | {c['step_over_one_eval']}× | "
                         f"{c['greater_rss_mb']} MB | {c.get('task_rss_mb', '—')} MB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
