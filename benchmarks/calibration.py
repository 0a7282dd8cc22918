"""Label calibration on the embedded models: the seed prompt uncalibrated, contextual and batch calibrated.

    python -m benchmarks.calibration                        # the suite below, 5 seeds, SmolLM2-135M (~15 min)
    python -m benchmarks.calibration --models local qwen-1.5b --seeds 0 1 2 3 4
    python -m benchmarks.calibration --quick                # 1 task, 1 seed, 40 test examples (a smoke run)

The task suite and inclusion rule were fixed before any run: every classification task prompthone builds in
(`gen:sentiment_templates`, `gen:boolean_expressions`, `examples/sentiment.jsonl`) and the two-label BIG-bench
tasks of BBH that load offline (`bbh:navigate`, `bbh:sports_understanding`, `bbh:causal_judgment`). Each seed
draws the task's splits again (and, for generated tasks, its data); the test split is the largest the task allows
up to `--test-size`. Calibration never sees a test input: batch calibration reads the first 32 train inputs.

For each task the per-example scores of all seeds are pooled (every seed's test examples are its own draw) and
each calibration is compared with the uncalibrated seed prompt pair by pair (`evaluation.statistics`: paired
bootstrap 95% interval, exact McNemar test). Raw per-example scores go to `benchmarks/results/calibration.json`;
the table is written from that file into RESULTS.md (`--from-raw` rewrites it without running anything).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import prompthone as ph
from benchmarks.results_md import add_raw_options, publish_raw, save_raw, stamp
from prompthone.evaluation.statistics import PairedComparison, paired_comparison

TASKS = ("gen:sentiment_templates", "gen:boolean_expressions", "examples/sentiment.jsonl", "bbh:navigate",
         "bbh:sports_understanding", "bbh:causal_judgment")
CALIBRATIONS = ("none", "contextual", "batch")
RAW = Path(__file__).with_name("results") / "calibration.json"


def _load(name: str, seed: int, test_size: int) -> ph.Task:
    # generated tasks are drawn large enough for the test split asked for; the others have what they have
    limit = max(3 * test_size, 120) if name.startswith("gen:") else None
    task = ph.load_task(name, seed=seed, limit=limit)
    size = min(test_size, len(task.test))
    return ph.load_task(name, seed=seed, limit=limit, test_size=size)


def measure(models: list[str], tasks: list[str], seeds: list[int], test_size: int, cache: Path) -> dict[str, Any]:
    """Per model, task, seed and calibration: the per-example test scores and predictions, and the wall time."""
    runs: list[dict[str, Any]] = []
    for spec in models:
        model = ph.make_model(spec)
        for name in tasks:
            for seed in seeds:
                task = _load(name, seed, test_size)
                row: dict[str, Any] = {"model": spec, "model_id": model.id, "task": name, "seed": seed,
                                       "n_test": len(task.test), "results": {}}
                for calibration in CALIBRATIONS:
                    started = time.monotonic()
                    result = ph.evaluate(task, None, model, split="test", cache=cache, calibration=calibration)
                    row["results"][calibration] = {
                        "score": result.score, "per_example": [r.score for r in result.examples],
                        "predictions": [r.prediction for r in result.examples],
                        "seconds": round(time.monotonic() - started, 2)}
                runs.append(row)
                print(json.dumps({k: row[k] for k in ("model", "task", "seed", "n_test")}
                                 | {c: round(row["results"][c]["score"], 3) for c in CALIBRATIONS}), flush=True)
    return {"runs": runs}


def summarize(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model and task: pooled scores and each calibration against none, pair by pair."""
    rows = []
    keys = dict.fromkeys((r["model"], r["task"]) for r in raw["runs"])
    for model, task in keys:
        mine = [r for r in raw["runs"] if (r["model"], r["task"]) == (model, task)]
        pooled = {c: [s for r in mine for s in r["results"][c]["per_example"]] for c in CALIBRATIONS}
        row: dict[str, Any] = {"model": model, "task": task, "seeds": len(mine), "n": len(pooled["none"]),
                               "score": {c: sum(v) / len(v) for c, v in pooled.items()}}
        for c in CALIBRATIONS[1:]:
            row[c] = paired_comparison(pooled[c], pooled["none"]).to_dict()
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | task | seeds × test | uncalibrated | contextual | contextual − none (95% CI, p) | batch | "
             "batch − none (95% CI, p) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for c in CALIBRATIONS[1:]:
            cells += [f"{r['score'][c]:.3f}", PairedComparison.from_dict(r[c]).cell()]
        lines.append(f"| {r['model']} | {r['task']} | {r['seeds']} × {r['n'] // max(r['seeds'], 1)} | "
                     f"{r['score']['none']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def publish(raw: dict[str, Any], results_md: Path) -> str:
    text = table(summarize(raw))
    setup = ("The task's seed prompt, label scoring, on the test split of each seed's draw, pooled over seeds; "
             "contextual calibration from the content-free inputs (\"N/A\", \"\", \"[MASK]\"), batch calibration "
             "from the first 32 train inputs. Differences are paired on the same examples (bootstrap 95% interval, "
             "exact McNemar p); an interval that holds 0 is no difference. Raw per-example scores: "
             "`benchmarks/results/calibration.json`.")
    publish_raw(results_md, "calibration", "Label calibration of the seed prompt", raw, setup, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["local"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    add_raw_options(parser, RAW)
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/out/calibration/calls.sqlite"))
    args = parser.parse_args(argv)
    if args.from_raw:
        print(publish(json.loads(args.raw.read_text()), args.results_md))
        return 0
    if args.quick:
        args.tasks, args.seeds, args.test_size = args.tasks[:1], args.seeds[:1], 40
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    raw = measure(args.models, args.tasks, args.seeds, args.test_size, args.cache)
    stamp(raw, "benchmarks.calibration", argv)
    if args.quick:
        print(table(summarize(raw)))
        return 0
    save_raw(raw, args.raw)
    print(publish(raw, args.results_md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
