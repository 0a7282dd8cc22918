"""The eccentric-prompts study (Battle & Gollapudi 2024) as the `battle-gollapudi` preset of `prompthone study` runs it,
with paired statistics on test: hand-written system messages against an optimizer of the system message and an
answer prefix, on grade-school arithmetic word problems with numeric exact match.

    python -m benchmarks.study                       # the preset study (~50 min on 2 cores), raw file + RESULTS.md
    python -m benchmarks.study --study-dir DIR       # take a finished `prompthone study` run (see RUN_COMMAND)
    python -m benchmarks.study --from-raw            # rewrite the RESULTS.md section from results/study.json

The study itself is `prompthone study` (`RUN_COMMAND`, or `ph.study` with the same settings): the 120 hand prompts
(5 openers × 3 task lines × 4 closers, each with and without 128 tokens of chain-of-thought) raced by successive
halving on dev, then GEPA (evolving the system message, the instruction and an answer prefix; the 1.5B embedded
model reflects) at the grid's budget in calls, capped at 200 metric calls so it finishes in minutes. This module
then scores the seed prompt, the best hand prompt and each optimizer's prompt on the whole test split (the study's
call cache answers every call it already made) and keeps every per-example score, so each difference below is a
paired comparison on the same test examples with a 95% interval. One seed: the study is one run, and the table
says so. `--study-dir` reads a study run made by `RUN_COMMAND`, refusing one whose settings differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import prompthone as ph
from benchmarks.results_md import add_raw_options, publish_raw, save_raw, stamp
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.statistics import PairedComparison, paired_comparison
from prompthone.grid_study.evaluate import HandRow
from prompthone.grid_study.grid import PRESETS, HandVariant, expand_grid, preset_grid
from prompthone.grid_study.outputs import marginal_means
from prompthone.prompts.prompt import Prompt
from prompthone.run.session import Session
from prompthone.tasks.example import Task

RAW = Path(__file__).parent / "results" / "study.json"
PRESET = "battle-gollapudi"
#: fixed before the run: the task, its split (the largest test split a 50-minute run allows) and the search's knobs
SETTINGS: dict[str, Any] = {"task": PRESETS[PRESET].task, "limit": 200, "dev_size": 48, "test_size": 100,
                            "seed": 0, "eta": 3, "min_slice": 8,
                            "methods": ["gepa:evolve_answer_prefix=true,max_metric_calls=200"]}
RUN_COMMAND = (f"prompthone study --task {SETTINGS['task']} --grid {PRESET} --limit {SETTINGS['limit']} "
               f"--dev-size {SETTINGS['dev_size']} --test-size {SETTINGS['test_size']} --halving --eta "
               f"{SETTINGS['eta']} --min-slice {SETTINGS['min_slice']} -M {SETTINGS['methods'][0]} --seed "
               f"{SETTINGS['seed']} --runs-dir benchmarks/out/study-bg")


def _task() -> Task:
    return ph.load_task(SETTINGS["task"], seed=SETTINGS["seed"], limit=SETTINGS["limit"],
                        dev_size=SETTINGS["dev_size"], test_size=SETTINGS["test_size"])


def _run_study(out: Path) -> Path:
    """Run the preset study as `RUN_COMMAND` does; the directory it wrote."""
    result = ph.study(_task(), "local", grid=PRESET, methods=SETTINGS["methods"], halving=True, eta=SETTINGS["eta"],
                      min_slice=SETTINGS["min_slice"], seed=SETTINGS["seed"], run_dir=out, progress=True)
    return Path(result.run_dir)


def _check_settings(config: dict[str, Any], task: Task) -> None:
    """Refuse a study run whose task, split, grid or search differ from `SETTINGS` (its figures would not be ours)."""
    sizes = {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)}
    found = {"task": config["task"]["name"], "sizes": config["task"]["sizes"], "grid": config["grid"]["source"],
             "halving": config["halving"], "methods": config["methods"], "seed": config["seed"]}
    wanted = {"task": task.name, "sizes": sizes, "grid": f"preset {PRESET}",
              "halving": {"eta": SETTINGS["eta"], "min_slice": SETTINGS["min_slice"]},
              "methods": SETTINGS["methods"], "seed": SETTINGS["seed"]}
    if found != wanted:
        raise SystemExit(f"this study run's settings are not the benchmark's: {found} != {wanted}")


def collect(study_dir: Path) -> dict[str, Any]:
    """The raw results of a finished study: the grid's table, and each compared prompt's per-example test scores."""
    study = json.loads((study_dir / "study.json").read_text(encoding="utf-8"))
    config = json.loads((study_dir / "config.json").read_text(encoding="utf-8"))
    task = _task()
    _check_settings(config, task)
    variants = expand_grid(preset_grid(PRESET), cot_tokens=study["cot_tokens"])
    seed_variant = next(v for v in variants if not (v.opener or v.task_line or v.closer or v.cot))
    best = study["best_hand"]
    seed_row = next(r for r in study["rows"] if r["index"] == seed_variant.index)
    prompts: list[dict[str, Any]] = [
        {"label": "seed prompt (no system message, direct)", "kind": "seed",
         "prompt": seed_variant.prompt(task, study["cot_tokens"]),
         "dev": seed_row["dev_score"] if seed_row["n"] == study["n_dev"] else None, "calls": None},
        {"label": f"best hand prompt ({_variant_text(variants[best['index']])})", "kind": "hand",
         "prompt": variants[best["index"]].prompt(task, study["cot_tokens"]), "dev": best["dev_score"],
         "calls": study["spend"]["calls"], "wall_s": study["wall_time_s"]}]
    for o in study["optimizers"]:
        prompts.append({"label": o["label"], "kind": "optimizer", "prompt": Prompt.from_dict(o["best_prompt"]),
                        "dev": o["dev_score"], "calls": o["spend"]["calls"], "wall_s": o["wall_time_s"],
                        "rank": o["ranking"]["text"], "stopped": o["stopped_reason"]})
    model = ph.resolve_model("local")
    if model.id != study["model"]:
        raise SystemExit(f"the study ran on {study['model']}, not on the embedded model {model.id}")
    session = Session(cache=CallCache())  # the study's cache: the hand prompts' and the runs' test calls are in it
    evaluator = session.evaluator(task, model, role="final", mode=config["scoring"])
    started = time.monotonic()
    if prompts[0]["dev"] is None:  # halving may have pruned it on a slice: its score on the whole dev split
        prompts[0]["dev"] = evaluator.evaluate(prompts[0]["prompt"], task.dev).score
    for p in prompts:
        result = evaluator.evaluate(p["prompt"], task.test)
        p["test"] = [r.score for r in result.examples]
        p["prompt"] = p["prompt"].to_dict()
    rows = [[r["opener"], r["task_line"], r["closer"], r["cot"], r["dev_score"], r["n"], r["calls"], r["pruned_at"],
             list(r["rung_scores"])] for r in sorted(study["rows"], key=lambda r: r["index"])]
    return {"settings": SETTINGS, "study_command": RUN_COMMAND, "study_dir": str(study_dir),
            "task_model": study["model"], "meta_model": study["meta_model"], "cot_tokens": study["cot_tokens"],
            "n_dev": study["n_dev"], "n_test": len(task.test), "rungs": [r["size"] for r in study["rungs"]],
            "grid_calls": study["spend"]["calls"], "full_grid_calls": study["full_grid_calls"],
            "grid_wall_s": study["wall_time_s"], "rows": rows, "prompts": prompts,
            "rescoring": {"new_calls": session.meter.spend.new_calls, "wall_s": round(time.monotonic() - started, 1)}}


def _variant_text(variant: HandVariant) -> str:
    return (variant.system or "no system message") + (", CoT" if variant.cot else ", direct")


def _hand_rows(raw: dict[str, Any]) -> list[HandRow]:
    return [HandRow(rank=0, index=i, opener=o, task_line=t, closer=c, cot=cot, system=None, dev_score=dev, n=n,
                    calls=calls, pruned_at=pruned, rung_scores=tuple(rungs))
            for i, (o, t, c, cot, dev, n, calls, pruned, rungs) in enumerate(raw["rows"])]


def table(raw: dict[str, Any]) -> str:
    """The section's tables and findings, every figure from the raw file."""
    prompts = raw["prompts"]
    seed, hand = prompts[0], prompts[1]
    lines = [f"| what | dev ({raw['n_dev']}) | test ({raw['n_test']}) | vs seed prompt on test | vs best hand prompt "
             "on test | calls |", "|---|---|---|---|---|---|"]
    # each paired comparison once: the table's cells and the findings word the same ones
    vs_seed = {p["label"]: paired_comparison(p["test"], seed["test"]) for p in prompts[1:]}
    vs_hand = {p["label"]: paired_comparison(p["test"], hand["test"]) for p in prompts[2:]}
    for p in prompts:
        mean = sum(p["test"]) / len(p["test"])
        seed_cell = vs_seed[p["label"]].cell() if p["label"] in vs_seed else "—"
        hand_cell = vs_hand[p["label"]].cell() if p["label"] in vs_hand else "—"
        calls = "—" if p["calls"] is None else str(p["calls"])
        lines.append(f"| {p['label']} | {p['dev']:.3f} | {mean:.3f} | {seed_cell} | {hand_cell} | {calls} |")
    hand_rows = _hand_rows(raw)
    first = [r.rung_scores[0] for r in hand_rows]
    lines += ["", f"Successive halving scored all {len(hand_rows)} hand prompts on the first {raw['rungs'][0]} dev "
              f"examples (slices {', '.join(map(str, raw['rungs']))}; {raw['grid_calls']} calls instead of "
              f"{raw['full_grid_calls']}, {raw['grid_wall_s'] / 60:.1f} min). On that first slice they range "
              f"{min(first):.3f}–{max(first):.3f}; mean per choice:", ""]
    for part, levels in marginal_means(hand_rows, first_rung=True).items():
        spread = max(m for _, m, _ in levels) - min(m for _, m, _ in levels)
        cells = "; ".join(f"{name} {mean:.3f}" for name, mean, _ in levels)
        lines.append(f"- {part} (spread {spread:.3f}): {cells}")
    lines += ["", "Found prompts:", ""]
    for p in prompts[2:]:
        found = p["prompt"]
        text = "; ".join(f"{k} {found[k]!r}" for k in ("system", "instruction", "answer_prefix") if found.get(k))
        lines.append(f"- {p['label']} ({p.get('rank', '')}; stopped: {p.get('stopped', '?')}): {text}")
    lines += ["", *_findings(raw, vs_seed[hand["label"]], vs_hand)]
    return "\n".join(lines) + "\n"


def _findings(raw: dict[str, Any], hand_vs_seed: PairedComparison,
              vs_hand: dict[str, PairedComparison]) -> list[str]:
    """What the run shows, in the terms of the paper's two claims, each worded from its interval."""
    hand = raw["prompts"][1]
    out = ["What this run shows (one seed, one task, the 135M model; nothing beyond it):", "",
           f"- The best hand prompt on dev against the seed prompt on test: {hand_vs_seed.cell()}."]
    for p in raw["prompts"][2:]:
        comparison = vs_hand[p["label"]]
        verdict = ("so here the paper's shape holds: the optimizer's prompt beats the best hand prompt"
                   if comparison.significant and comparison.difference > 0 else
                   "so the paper's claim that an optimizer beats the hand prompts is not shown here"
                   + ("" if comparison.significant else " (a difference inside its interval is no difference)"))
        out.append(f"- {p['label']} against the best hand prompt on test: {comparison.cell()}; {verdict}. It spent "
                   f"{p['calls']} calls, the grid {hand['calls']}.")
    return out


def _publish(raw: dict[str, Any], results_md: Path) -> str:
    text = table(raw)
    setup = (f"The study: `{raw['study_command']}` (task model {raw['task_model']}, meta model {raw['meta_model']}, "
             f"{raw['cot_tokens']} reasoning tokens for the CoT variants, seed {raw['settings']['seed']}; split "
             f"dev {raw['n_dev']} / test {raw['n_test']} of {raw['settings']['limit']} generated word problems). "
             f"Differences are paired on the same {raw['n_test']} test examples, 95% bootstrap intervals and exact "
             f"McNemar p; \"no difference\" where the interval holds 0. Raw per-example scores: "
             f"`benchmarks/results/study.json`. The grid's wording: openers, task lines and closers quoted from the "
             f"paper where METHODS.md gives them, the rest ours in the same style "
             f"(`src/prompthone/grid_study/{PRESETS[PRESET].grid_file}`)."
             + (f" {raw['note']}" if raw.get("note") else "") + "\n")
    publish_raw(results_md, "study", "The eccentric-prompts study (Battle & Gollapudi preset)", raw, setup, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, help="a finished study run of RUN_COMMAND (default: run one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/study-bg"))
    parser.add_argument("--note", default="", help="a sentence on how this run was made, shown under the command")
    add_raw_options(parser, RAW)
    args = parser.parse_args(argv)
    if args.from_raw:
        raw = json.loads(args.raw.read_text(encoding="utf-8"))
    else:
        raw = collect(args.study_dir or _run_study(args.out))
        stamp(raw, "benchmarks.study", argv)
        raw["note"] = args.note
        save_raw(raw, args.raw)
    print(_publish(raw, args.results_md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
