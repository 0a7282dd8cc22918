"""Does each prompt-optimization method find a prompt significantly better than the seed prompt, on held-out test
data? (Issue 18, point 2.) The full design, fixed before any run, is in benchmarks/README.md ("Quality").

    python -m benchmarks.quality                                  # every stage, regime, task, method, seed (~1-2 days)
    python -m benchmarks.quality --stage precheck                 # the inclusion rule only (dev, minutes per task)
    python -m benchmarks.quality --regimes local --tasks gen:sentiment_templates --methods ape opro --seeds 0 1
    python -m benchmarks.quality --stage yardstick --regimes local
    python -m benchmarks.quality --quick                          # 1 task, 1 seed, budget 40: writes no raw file
    python -m benchmarks.quality --from-raw                       # rewrite the RESULTS.md section only

Stages, per regime (task model; the meta model is Qwen2.5-Coder-1.5B in both) and task: `precheck` scores the seed
prompt on dev (never test) and applies the inclusion rule; `methods` runs each method on each seed through
`prompthone.compare` (one call per unit, so an interruption loses at most that unit), on included tasks only;
`yardstick` scores 24 hand prompts on test, each read uncalibrated and under both calibrations (an upper reference,
selected on test: not a method). Every unit is merged into `benchmarks/results/quality.json` as it finishes, keyed
by (regime, task, method, seed) for runs and (regime, task) for prechecks and yardsticks: entries of other keys are
never dropped, so the grid can be filled in pieces over several sessions (a unit already there is skipped unless
`--rerun`; a precheck, once recorded, is never recomputed). The RESULTS.md section is written from that file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import prompthone as ph
from benchmarks.meta_models import METHODS as SIZED_METHODS
from benchmarks.outcomes import decode, encode
from benchmarks.results_md import add_raw_options, save_raw, source_commit, stamp, write_section
from prompthone.api import resolve_model
from prompthone.compare import ComparisonRow, RunOutcomes, compare, compare_runs, mean_cell, summarize
from prompthone.errors import ConfigError, PrompthoneError
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, Evaluator
from prompthone.evaluation.statistics import PairedComparison
from prompthone.grid_study.grid import GridSpec, expand_grid
from prompthone.optimizers.auto_pool import balanced_demos
from prompthone.prompts.prompt import Prompt
from prompthone.run.session import Session
from prompthone.tasks.metrics import get_metric

RAW = Path(__file__).with_name("results") / "quality.json"
#: candidate tasks and the number of examples drawn (None: all there are); the order is the tables' order
SUITE: dict[str, int | None] = {
    "gen:sentiment_templates": 400, "gen:boolean_expressions": 400, "examples/reviews.jsonl": None,
    "evals:sarcasm": 400, "bastion:injection": None, "bbc:topics": 400, "evals:heart_disease": None,
    "bbh:sports_understanding": None, "bbh:causal_judgment": None,
    # appended 2026-12-07, before any method ran on them (benchmarks/README.md): only 4 of the first 9 passed the rule
    "evals:socialiqa": 400, "evals:corr2cause": 400}
DATA_SEED = 0
#: split sizes: test = min(200, half the examples), dev = min(60, a quarter), train the rest
TEST_MAX, DEV_MAX = 200, 60
REGIMES = {"local": "SmolLM2-135M-Instruct", "qwen-0.5b": "Qwen2.5-Coder-0.5B-Instruct"}
META_MODEL = "qwen-1.5b"
BUDGET = 300
#: the seeds of a complete unit; a method with fewer is marked as such in its task table
SEEDS = (0, 1, 2, 3, 4)
#: the inclusion rule: the seed's uncalibrated dev score below CEILING, and its best dev score (none, contextual,
#: batch) at least SIGNAL_MARGIN above the dev majority-label rate
CEILING, SIGNAL_MARGIN = 0.9, 0.05
CALIBRATIONS = ("none", "contextual", "batch")
QUICK = {"test": 40, "dev": 20, "limit": 120, "budget": 40}

# The yardstick's hand prompts: 3 phrasings × 2 placements × 4 demo counts, each read under the 3 calibrations.
#: the default study grid's opener (grid_study/default_grid.yaml), put before the task's own instruction
EXPERT_OPENER = "You are a highly intelligent expert."
PLACEMENTS = ("user", "system")
DEMO_COUNTS = (0, 2, 4, 8)
DEMO_SEED = 0


def method_specs(budget: int) -> dict[str, tuple[str, str]]:
    """Each method's `compare` spec and calibration, in the tables' order."""
    sized = {spec.partition(":")[0]: spec for spec in SIZED_METHODS}  # opro, apo: sized for a 200-300 budget
    return {
        "seed": ("seed", "none"), "seed+contextual": ("seed", "contextual"), "seed+batch": ("seed", "batch"),
        # APE's published configuration (3 subsets × 5 demos, execution accuracy on 20 samples, no iterative
        # search) with 4 proposals per subset instead of 30: 12 candidates × 20 = 240 calls
        "auto": ("auto", "none"), "ape": ("ape:num_prompts_per_subsample=4", "none"), "opro": (sized["opro"], "none"),
        "apo": (sized["apo"], "none"),
        # MIPROv2's light defaults would cost ~620 calls on a 60-example dev (seed on dev 60, bootstrapping, 10
        # trials × 35, 3 full evaluations × 60). Here: the seed on dev (60) + bootstrapping 2 sets (~15) + 8 trials
        # × 12 (96) + 2 full evaluations (after trials 4 and 8: 120) ≈ 290: 3 instructions × 4 demo sets, searched.
        "mipro": ("mipro:num_demo_sets=4,num_trials=8,minibatch_size=12,minibatch_full_eval_steps=4", "none"),
        # GEPA's own stop (per-example evaluations) at the call budget; a 30-example Pareto set so that admitting a
        # child costs 30 calls, not 60: the seed (30) + ~25 minibatch iterations (3 + 3 calls) + a few admissions
        # fit; 150-token reflections (an instruction; the 1.5B meta model writes ~10 tokens/s on 2 cores).
        "gepa": (f"gepa:max_metric_calls={budget},pareto_set_size=30,meta_max_tokens=150", "none"),
    }


METHODS = tuple(method_specs(BUDGET))


def setup(budget: int) -> dict[str, Any]:
    """Everything the figures depend on; a raw file made with another setup is never added to."""
    return {"budget": budget, "meta_model": META_MODEL, "regimes": REGIMES, "suite": SUITE, "data_seed": DATA_SEED,
            "splits": {"test": f"min({TEST_MAX}, n // 2)", "dev": f"min({DEV_MAX}, n // 4)", "train": "the rest"},
            "rule": {"ceiling": CEILING, "signal_margin": SIGNAL_MARGIN},
            "methods": {name: {"spec": spec, "calibration": cal} for name, (spec, cal) in method_specs(budget).items()},
            "yardstick": {"opener": EXPERT_OPENER, "placements": list(PLACEMENTS), "demos": list(DEMO_COUNTS),
                          "demo_seed": DEMO_SEED, "calibrations": list(CALIBRATIONS)}}


# -- the raw file ---------------------------------------------------------------------------------------------------

KEYS = {"precheck": ("regime", "task"), "runs": ("regime", "task", "method", "seed"), "yardstick": ("regime", "task")}


def key_of(kind: str, entry: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(entry[k] for k in KEYS[kind])


def find(raw: dict[str, Any], kind: str, **key: Any) -> dict[str, Any] | None:
    want = tuple(key[k] for k in KEYS[kind])
    return next((e for e in raw[kind] if key_of(kind, e) == want), None)


def merge(raw: dict[str, Any], kind: str, entry: dict[str, Any]) -> None:
    """Put `entry` in `raw[kind]`: in place of the entry with the same key, else at the end; nothing else moves."""
    entries = raw[kind]
    for i, old in enumerate(entries):
        if key_of(kind, old) == key_of(kind, entry):
            entries[i] = entry
            return
    entries.append(entry)


def new_raw(budget: int) -> dict[str, Any]:
    return {"benchmark": "quality", "setup": setup(budget), "invocations": [], "precheck": [], "runs": [],
            "yardstick": []}


def _unrun_methods_changed(raw: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the methods differ only in methods that have no run in `raw` (added, or respecified before use)."""
    old, new = raw["setup"].get("methods", {}), wanted["methods"]
    run = {e["method"] for e in raw["runs"]}
    return all(old.get(m) == new.get(m) for m in run) and run <= new.keys()


def check_setup(raw: dict[str, Any], budget: int, path: Path) -> None:
    """Refuse a raw file made with another setup. Two changes are allowed: candidate tasks appended to the suite (the
    rule and every recorded task unchanged), since a new candidate is judged by the same dev-only rule before any
    method runs on it (the extension is recorded in the file, `suite_extensions`, and shown in RESULTS.md); and a
    method that has no run yet may be added or respecified."""
    wanted = json.loads(json.dumps(setup(budget)))  # as JSON reads it back (tuples → lists)
    differs = sorted(k for k in wanted.keys() | raw["setup"].keys() if raw["setup"].get(k) != wanted.get(k))
    if "methods" in differs and _unrun_methods_changed(raw, wanted):
        raw["setup"]["methods"] = wanted["methods"]
        differs.remove("methods")
    old_suite, new_suite = raw["setup"].get("suite", {}), wanted["suite"]
    if differs == ["suite"] and list(new_suite)[:len(old_suite)] == list(old_suite) \
            and all(new_suite[task] == limit for task, limit in old_suite.items()):
        added = [task for task in new_suite if task not in old_suite]
        raw.setdefault("suite_extensions", []).append({"added": added, "on": time.strftime("%Y-%m-%d"),
                                                       "commit": source_commit()})
        raw["setup"]["suite"] = new_suite
        return
    if differs:
        raise ConfigError(f"{path} was made with another setup (it differs in: {', '.join(differs)}); results of "
                          "two setups are never merged: pass another --raw")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the raw file's folder: two invocations filling one raw file never drop each other's
    entries (each re-reads the file under the lock before it writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class RawResults:
    """The raw results of this invocation's setup, merged unit by unit into the file at `path` as each finishes
    (re-read under a lock, written whole to a temporary file and renamed: a kill leaves the last good file), or
    kept in memory only when `path` is None (the quick run)."""

    def __init__(self, path: Path | None, budget: int, invocation: dict[str, Any]) -> None:
        self.path, self.budget, self.invocation = path, budget, invocation
        self.data = self._read()

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return new_raw(self.budget)
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        check_setup(data, self.budget, self.path)
        return data

    def add(self, kind: str, entry: dict[str, Any]) -> None:
        if self.path is None:
            self._merge(self.data, kind, entry)
            return
        with _locked(self.path.parent):
            data = self._read()
            self._merge(data, kind, entry)
            save_raw(data, self.path)
            self.data = data

    def _merge(self, data: dict[str, Any], kind: str, entry: dict[str, Any]) -> None:
        if self.invocation not in data["invocations"]:
            data["invocations"].append(self.invocation)
        merge(data, kind, entry | {"invocation": data["invocations"].index(self.invocation)})


# -- the tasks and the inclusion rule --------------------------------------------------------------------------------

def split_sizes(n: int, quick: bool = False) -> tuple[int, int]:
    """(test, dev) sizes for a task of `n` examples."""
    test_max, dev_max = (QUICK["test"], QUICK["dev"]) if quick else (TEST_MAX, DEV_MAX)
    return min(test_max, n // 2), min(dev_max, n // 4)


def load(spec: str, quick: bool = False) -> ph.Task:
    """The task's one draw (data seed 0) with the benchmark's split sizes, named by its spec (the raw file's key);
    label-scored tasks only."""
    limit = SUITE[spec]
    if quick and limit is not None:
        limit = QUICK["limit"]
    drawn = ph.load_task(spec, seed=DATA_SEED, limit=limit)
    test, dev = split_sizes(len(drawn.train) + len(drawn.dev) + len(drawn.test), quick)
    task = ph.load_task(spec, seed=DATA_SEED, limit=limit, dev_size=dev, test_size=test)
    if not task.labels or not get_metric(task.metric).is_mean:
        raise ConfigError(f"{spec}: the quality benchmark needs a label set and a metric that is a mean of "
                          f"per-example scores (got labels {task.labels}, metric {task.metric})")
    return dataclasses.replace(task, name=spec)


def inclusion(dev: dict[str, float], majority: float) -> tuple[bool, str]:
    """The rule: (included, the reason in words) from the seed prompt's dev scores and the dev majority-label rate.
    Dev scores are counts over the split, so margins are rounded to 9 digits before they are compared."""
    if round(dev["none"], 9) >= CEILING:
        return False, f"at ceiling: seed dev {dev['none']:.3f} ≥ {CEILING}"
    best = max(CALIBRATIONS, key=lambda c: dev[c])
    margin = dev[best] - majority
    verdict = f"best seed dev {dev[best]:.3f} ({best}) − majority {majority:.3f} = {margin:+.3f}"
    if round(margin, 9) < SIGNAL_MARGIN:
        return False, f"no signal: {verdict} < {SIGNAL_MARGIN}"
    return True, verdict


def included(entry: dict[str, Any] | None) -> bool:
    return entry is not None and inclusion(entry["dev"], entry["dev_majority"])[0]


def seed_prompt(task: ph.Task) -> Prompt:
    return Prompt(task.instruction, output_format=task.output_format)


def _readings(evaluator: Evaluator, prompt: Prompt, examples: Sequence[Any]) -> dict[str, EvalResult]:
    """`prompt` on `examples`, read uncalibrated and under each calibration: one scoring pass, then each prior's
    own estimate (3 content-free or 32 train inputs) and a rescore of the same log-probabilities."""
    plain = evaluator.evaluate(prompt, examples)
    out = {"none": plain}
    for method in CALIBRATIONS[1:]:
        out[method] = evaluator.rescore(plain, evaluator.calibrate(prompt, method).calibration)
    return out


def _evaluator(session: Session, task: ph.Task, regime: str) -> Evaluator:
    evaluator = session.evaluator(task, resolve_model(regime))
    if evaluator.mode != "labels":
        raise ConfigError(f"{task.name} on {regime}: the benchmark needs label scoring")
    return evaluator


def precheck(task: ph.Task, regime: str, cache: CallCache | None) -> dict[str, Any]:
    """The seed prompt on dev only: its three readings, the dev majority-label rate and the rule's verdict."""
    started = time.monotonic()
    session = Session(cache=cache)
    with session:
        readings = _readings(_evaluator(session, task, regime), seed_prompt(task), task.dev)
    dev = {c: r.score for c, r in readings.items()}
    majority = max(Counter(e.target for e in task.dev).values()) / len(task.dev)
    ok, reason = inclusion(dev, majority)
    return {"regime": regime, "task": task.name, "model_id": resolve_model(regime).id, "n_train": len(task.train),
            "n_dev": len(task.dev), "n_test": len(task.test), "dev_majority": majority, "dev": dev,
            "included": ok, "reason": reason, "calls": session.meter.spend.calls,
            "wall_time_s": round(time.monotonic() - started, 2)}


# -- the methods ------------------------------------------------------------------------------------------------------

def run_unit(task: ph.Task, regime: str, method: str, seed: int, budget: int, run_dir: Path,
             cache: CallCache | None) -> dict[str, Any]:
    """One method on one seed through `compare` (its own call: a calibration applies to every method of a call).
    `reference` is the uncalibrated seed prompt's per-example test scores, what every method is compared with."""
    spec, calibration = method_specs(budget)[method]
    rows, _ = compare(task, [spec], model=regime, meta_model=META_MODEL, task_calls=budget, seeds=[seed],
                      run_dir=run_dir, cache=cache, calibration=calibration, progress=False)
    row = rows[0]
    if row.test_outcomes is None:
        raise ConfigError(f"{method} on {task.name} (seed {seed}) has no test outcomes")
    reference = row.test_outcomes.seed
    if calibration != "none":  # the run's own seed is the calibrated one; compare with the plain seed prompt
        plain = ph.evaluate(task, None, regime, split="test", cache=cache)
        reference = tuple(r.score for r in plain.examples)
    return {"regime": regime, "task": task.name, "method": method, "seed": seed, "spec": spec,
            "calibration": calibration, "test_score": row.test_score, "dev_score": row.dev_score,
            "task_calls": row.task_calls, "meta_calls": row.meta_calls, "tokens": row.tokens,
            "wall_time_s": row.wall_time_s, "run_id": row.run_id, "best": encode(row.test_outcomes.best),
            "reference": encode(reference)}


# -- the yardstick ----------------------------------------------------------------------------------------------------

def phrasings(task: ph.Task) -> tuple[str, ...]:
    """The task's own instruction, the label-listing wording prompthone gives a data file, and the instruction after
    the default study grid's expert opener."""
    listing = f"Classify the input as one of: {', '.join(task.labels or ())}."
    return task.instruction, listing, f"{EXPERT_OPENER} {task.instruction}"


def hand_prompts(task: ph.Task) -> list[tuple[dict[str, Any], Prompt]]:
    """The 24 hand prompts: the study grid (grid_study) with the phrasings as its task lines, each placed in the user
    turn or as the system message, with 0/2/4/8 label-balanced training demos (one seeded draw; 2 ⊂ 4 ⊂ 8)."""
    grid = GridSpec(openers=("",), task_lines=phrasings(task), closers=("",), source="quality yardstick")
    order = balanced_demos(task.train, task.labels, max(DEMO_COUNTS), random.Random(DEMO_SEED))
    out = []
    for variant in expand_grid(grid, cot_tokens=0):
        base = variant.prompt(task, cot_tokens=0)  # the phrasing as system message, the task's instruction
        text = variant.system or ""
        for placement in PLACEMENTS:
            placed = (dataclasses.replace(base, instruction=text, system=None) if placement == "user"
                      else dataclasses.replace(base, instruction=""))
            for k in DEMO_COUNTS:
                prompt = dataclasses.replace(placed, demos=tuple(task.train[i] for i in order[:k]))
                out.append(({"phrasing": variant.index, "placement": placement, "demos": k}, prompt))
    return out


def yardstick(task: ph.Task, regime: str, cache: CallCache | None) -> dict[str, Any]:
    """Every hand prompt on test under every reading; the best reading (selected on test) with its outcomes."""
    started = time.monotonic()
    session = Session(cache=cache)
    prompts, best = [], None
    with session:
        evaluator = _evaluator(session, task, regime)
        for form, prompt in hand_prompts(task):
            readings = _readings(evaluator, prompt, task.test)
            prompts.append(form | {c: round(r.score, 6) for c, r in readings.items()})
            for c, r in readings.items():
                if best is None or r.score > best["score"]:
                    best = form | {"calibration": c, "score": r.score, "outcomes": encode(r.per_example())}
            print(json.dumps({"yardstick": task.name, "regime": regime} | prompts[-1]), flush=True)
    return {"regime": regime, "task": task.name, "n_test": len(task.test), "phrasings": list(phrasings(task)),
            "prompts": prompts, "best": best, "calls": session.meter.spend.calls,
            "wall_time_s": round(time.monotonic() - started, 2)}


# -- summaries and tables (written from the raw file only) -----------------------------------------------------------

def _order(method: str) -> tuple[int, str]:
    return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def task_rows(raw: dict[str, Any], regime: str, task: str) -> list[ComparisonRow]:
    """The runs of one regime and task as `compare` rows, each compared with the uncalibrated seed prompt."""
    mine = sorted((e for e in raw["runs"] if (e["regime"], e["task"]) == (regime, task)),
                  key=lambda e: (_order(e["method"]), e["seed"]))
    return [ComparisonRow(e["method"], e["seed"], e["test_score"], e["dev_score"], e["task_calls"], e["meta_calls"],
                          e["tokens"], e["wall_time_s"], run_id=e.get("run_id"),
                          test_outcomes=RunOutcomes(tuple(decode(e["best"])), tuple(decode(e["reference"]))))
            for e in mine]


def task_summary(raw: dict[str, Any], regime: str, task: str) -> list[dict[str, Any]]:
    """`compare.summarize` of the task's runs: per method the mean over seeds and test examples with its interval,
    and `vs_seed`."""
    return summarize(task_rows(raw, regime, task))


def _tasks(raw: dict[str, Any], kind: str, regime: str) -> list[str]:
    names = dict.fromkeys(e["task"] for e in raw[kind] if e["regime"] == regime)
    return sorted(names, key=lambda t: (list(SUITE).index(t) if t in SUITE else len(SUITE), t))


def included_tasks(raw: dict[str, Any], regime: str) -> list[str]:
    return [t for t in _tasks(raw, "precheck", regime) if included(find(raw, "precheck", regime=regime, task=t))]


def aggregate(raw: dict[str, Any], regime: str) -> list[dict[str, Any]]:
    """Per method over the included tasks it ran on: the mean paired difference from the seed prompt, and how many
    tasks show a significant gain, no difference, a significant loss."""
    per_method: dict[str, list[dict[str, Any]]] = {}
    for task in included_tasks(raw, regime):
        for s in task_summary(raw, regime, task):
            if s["method"] != "seed" and s["vs_seed"] is not None:
                per_method.setdefault(s["method"], []).append(s["vs_seed"])
    out = []
    for method in sorted(per_method, key=_order):
        cmps = per_method[method]
        out.append({"method": method, "tasks": len(cmps),
                    "mean_difference": statistics.fmean(c["difference"] for c in cmps),
                    "gain": sum(c["significant"] and c["difference"] > 0 for c in cmps),
                    "no_difference": sum(not c["significant"] for c in cmps),
                    "loss": sum(c["significant"] and c["difference"] < 0 for c in cmps)})
    return out


def difference_cell(c: dict[str, Any] | None) -> str:
    """ "+0.120 (+0.050 … +0.190), p=0.003", or "no difference: …" when the interval holds 0."""
    return "n/a" if c is None else PairedComparison.from_dict(c).cell()


def inclusion_table(raw: dict[str, Any], regime: str) -> str:
    lines = ["| task | train / dev / test | dev majority | seed dev: none / contextual / batch | verdict |",
             "|---|---|---|---|---|"]
    for task in _tasks(raw, "precheck", regime):
        e = find(raw, "precheck", regime=regime, task=task)
        assert e is not None
        ok, reason = inclusion(e["dev"], e["dev_majority"])
        dev = " / ".join(f"{e['dev'][c]:.3f}" for c in CALIBRATIONS)
        lines.append(f"| {task} | {e['n_train']} / {e['n_dev']} / {e['n_test']} | {e['dev_majority']:.3f} | {dev} | "
                     f"{'included' if ok else 'excluded'}: {reason} |")
    missing = [t for t in SUITE if t not in _tasks(raw, "precheck", regime)]
    if missing:
        lines.append("\nNot prechecked (not run, or their data did not load): " + ", ".join(missing) + ".")
    return "\n".join(lines) + "\n"


def task_table(raw: dict[str, Any], regime: str, task: str) -> str:
    lines = ["| method | test mean (95% CI over seeds and examples) | vs seed prompt (paired diff, 95% CI, p) | "
             "task calls | meta calls | tokens | wall s |", "|---|---|---|---|---|---|---|"]
    for s in task_summary(raw, regime, task):
        diff = "— (the reference)" if s["method"] == "seed" else difference_cell(s["vs_seed"])
        name = s["method"] if s["seeds"] >= len(SEEDS) else f"{s['method']} ({s['seeds']} of {len(SEEDS)} seeds)"
        lines.append(f"| {name} | {mean_cell(s)} | {diff} | {s['task_calls']:.0f} | {s['meta_calls']:.0f} | "
                     f"{s['tokens']:.0f} | {s['wall_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


def aggregate_table(raw: dict[str, Any], regime: str) -> str:
    lines = ["| method | included tasks run | mean paired difference vs seed | significant gain | no difference | "
             "significant loss |", "|---|---|---|---|---|---|"]
    for a in aggregate(raw, regime):
        lines.append(f"| {a['method']} | {a['tasks']} | {a['mean_difference']:+.3f} | {a['gain']} | "
                     f"{a['no_difference']} | {a['loss']} |")
    return "\n".join(lines) + "\n"


def yardstick_table(raw: dict[str, Any], regime: str) -> str:
    lines = ["| task | test n | seed prompt (test) | best method (mean test over seeds) | best hand prompt (test, "
             "selected on test) | its phrasing · placement · demos · reading | calls |",
             "|---|---|---|---|---|---|---|"]
    for task in _tasks(raw, "yardstick", regime):
        y = find(raw, "yardstick", regime=regime, task=task)
        assert y is not None
        b = y["best"]
        summary = task_summary(raw, regime, task)
        seed = next((f"{s['test_mean']:.3f}" for s in summary if s["method"] == "seed"), "—")
        top = max((s for s in summary if s["method"] != "seed"), key=lambda s: s["test_mean"], default=None)
        best_method = "—" if top is None else f"{top['test_mean']:.3f} ({top['method']})"
        lines.append(f"| {task} | {y['n_test']} | {seed} | {best_method} | {b['score']:.3f} | {b['phrasing'] + 1} · "
                     f"{b['placement']} · {b['demos']} · {b['calibration']} | {y['calls']} |")
    return "\n".join(lines) + "\n"


#: (method, baseline) pairs compared head to head where both ran: does auto's search add to calibration alone, and
#: how does the default compare with each published method at the same budget? (Each method's own difference to the
#: seed is in its task table; two methods both above the seed may still be no different from each other.)
HEAD_TO_HEAD = (("auto", "seed+batch"), ("auto", "seed+contextual"),
                *(("auto", m) for m in METHODS if m not in ("seed", "seed+contextual", "seed+batch", "auto")))


def head_to_head(raw: dict[str, Any], regime: str, task: str, method: str, baseline: str) -> dict[str, Any] | None:
    """`method`'s best prompts against `baseline`'s on the same test examples (per example the mean over each one's
    seeds; `compare.compare_runs`), or None unless both ran on the task."""
    rows = task_rows(raw, regime, task)
    mine = [r.test_outcomes.best for r in rows if r.label == method and r.test_outcomes]
    theirs = [r.test_outcomes.best for r in rows if r.label == baseline and r.test_outcomes]
    if not mine or not theirs:
        return None
    return compare_runs(mine, theirs).to_dict()


def head_to_head_table(raw: dict[str, Any], regime: str) -> str:
    """One row per included task and (method, baseline) pair that both ran; empty when none did."""
    lines = []
    for task in included_tasks(raw, regime):
        for method, baseline in HEAD_TO_HEAD:
            c = head_to_head(raw, regime, task, method, baseline)
            if c is not None:
                lines.append(f"| {task} | {method} − {baseline} | {difference_cell(c)} |")
    if not lines:
        return ""
    return "\n".join(["| task | pair | paired diff (95% CI, p) |", "|---|---|---|", *lines]) + "\n"


def regime_text(raw: dict[str, Any], regime: str) -> str:
    """The regime's blocks: inclusion, one table per task with runs, the aggregate, the yardstick."""
    blocks = [f"### Task model `{regime}` ({REGIMES.get(regime, regime)})\n",
              "**Inclusion (seed prompt on dev)**\n\n" + inclusion_table(raw, regime)]
    chosen = included_tasks(raw, regime)
    prechecked = _tasks(raw, "precheck", regime)
    if regime == "local" and len(chosen) < 5 and prechecked:
        pending = len(set(SUITE) - set(prechecked))
        so_far = f" so far ({pending} candidate(s) not prechecked)" if pending else ""
        blocks.append(f"Only {len(chosen)} task(s) pass the rule for this regime{so_far}, fewer than the 5 aimed for; "
                      "the rule was fixed before any method ran and is not loosened.\n")
    for task in _tasks(raw, "runs", regime):
        note = "" if task in chosen else " (not included by the rule: a quick run)"
        blocks.append(f"**{task}**{note}\n\n" + task_table(raw, regime, task))
    if chosen:
        blocks.append("**Aggregate over the included tasks**\n\n" + aggregate_table(raw, regime))
    pairs = head_to_head_table(raw, regime)
    if pairs:
        blocks.append("**Head to head: does auto's search add to calibration alone, and how does auto compare with "
                      "each other method? (paired, on the same test examples)**\n\n" + pairs)
    if _tasks(raw, "yardstick", regime):
        blocks.append("**Yardstick: the best of 24 hand prompts × 3 readings, selected on test**\n\n"
                      + yardstick_table(raw, regime))
    return "\n".join(blocks)


def commands(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The invocations that made the entries now in the raw file, in order."""
    used = sorted({e["invocation"] for kind in KEYS for e in raw[kind] if "invocation" in e})
    return [raw["invocations"][i] for i in used]


#: options that only say where files go: left out of the commands RESULTS.md shows
_FILE_OPTIONS = ("--raw", "--out", "--results-md")


def shown(invocation: dict[str, Any]) -> str:
    """An invocation as RESULTS.md lists it: the command without its file-location options, the versions, and the
    source commit when it was recorded."""
    words, kept = invocation["command"].split(), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in _FILE_OPTIONS:
            skip = True
        elif not word.startswith(tuple(f"{o}=" for o in _FILE_OPTIONS)):
            kept.append(word)
    commit = invocation.get("commit")
    source = f"; commit {commit[:7]}{'+dirty' if commit.endswith('+dirty') else ''}" if commit else ""
    return f"`{' '.join(kept)}` ({invocation['versions']}{source})"


def section(raw: dict[str, Any]) -> str:
    s = raw["setup"]
    made = "\n".join(f"- {shown(c)}" for c in commands(raw)) or "- (none yet)"
    intro = (f"Commands that made these figures:\n\n{made}\n\n"
             f"Meta model `{s['meta_model']}`; a budget of {s['budget']} task-model calls per run; label scoring. One "
             f"split per task (data seed {s['data_seed']}: test min({TEST_MAX}, n/2), dev min({DEV_MAX}, n/4), train "
             f"the rest). A task is included for a regime when the seed prompt's uncalibrated dev score is below "
             f"{s['rule']['ceiling']} and its best dev score (none, contextual, batch) beats the dev majority-label "
             f"rate by ≥ {s['rule']['signal_margin']}; the rule saw dev only. Test means are over seeds and test "
             "examples, with a 95% two-way bootstrap interval (seeds and examples resampled independently); \"vs "
             "seed prompt\" pairs each method's best prompts with the uncalibrated seed prompt on the "
             "same test examples (per example the mean over seeds; paired bootstrap 95% interval; p of a sign-flip "
             "permutation test of the mean, McNemar where every mean is 0 or 1); an interval that holds 0 is no "
             "difference. The yardstick is an upper reference selected on test, not a "
             "method. Knobs and per-example outcomes: `benchmarks/results/quality.json` (README, \"Quality\").\n\n")
    for extension in raw.get("suite_extensions", []):
        intro += (f"Candidate tasks appended to the suite on {extension['on']}, judged by the same rule before any "
                  f"method ran on them: {', '.join(f'`{t}`' for t in extension['added'])}.\n\n")
    regimes = [r for r in s["regimes"] if any(e["regime"] == r for kind in KEYS for e in raw[kind])]
    return intro + "\n".join(regime_text(raw, r) for r in regimes)


def publish(raw: dict[str, Any], results_md: Path) -> str:
    text = section(raw)
    write_section(results_md, "quality", "Quality: methods against the seed prompt on held-out test data", text)
    return text


# -- running the stages ------------------------------------------------------------------------------------------------

def run_task(args: argparse.Namespace, results: RawResults, regime: str, task: ph.Task, cache: CallCache) -> None:
    """The stages asked for on one task: its precheck first (recorded once), then, if the rule includes it, the
    method units and the yardstick that are not in the raw file yet (all of them with `--rerun`)."""
    entry = find(results.data, "precheck", regime=regime, task=task.name)
    if entry is None:
        entry = precheck(task, regime, cache)
        results.add("precheck", entry)
    ok, reason = inclusion(entry["dev"], entry["dev_majority"])
    print(json.dumps({"precheck": task.name, "regime": regime, "dev": entry["dev"],
                      "dev_majority": round(entry["dev_majority"], 3), "included": ok, "reason": reason}), flush=True)
    if args.stage == "precheck":
        return
    if not ok:
        if not args.quick:
            print(f"{regime} {task.name}: excluded by the rule ({reason}); no method runs on it", flush=True)
            return
        print(f"{regime} {task.name}: excluded by the rule ({reason}); the quick run goes on anyway", flush=True)
    if args.stage in ("methods", "all"):
        for method in args.methods:
            for seed in args.seeds:
                if not args.rerun and find(results.data, "runs", regime=regime, task=task.name, method=method,
                                           seed=seed):
                    continue
                unit = run_unit(task, regime, method, seed, args.budget, args.out / "runs", cache)
                results.add("runs", unit)
                print(json.dumps({k: unit[k] for k in ("regime", "task", "method", "seed", "test_score", "dev_score",
                                                       "task_calls", "meta_calls", "wall_time_s")}), flush=True)
    if args.stage in ("yardstick", "all") and (args.rerun or not find(results.data, "yardstick", regime=regime,
                                                                         task=task.name)):
        results.add("yardstick", yardstick(task, regime, cache))


def measure(args: argparse.Namespace, results: RawResults) -> None:
    """Every regime × task asked for, through one call cache under `--out` (shared by every stage and unit)."""
    cache = CallCache(args.out / "calls.sqlite")
    try:
        for regime in args.regimes:
            for spec in args.tasks:
                try:
                    task = load(spec, args.quick)
                except PrompthoneError as exc:
                    print(f"{regime} {spec}: not loaded, left out of this invocation ({exc})", flush=True)
                    continue
                run_task(args, results, regime, task, cache)
    finally:
        cache.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    parser.add_argument("--tasks", nargs="+", choices=list(SUITE), default=list(SUITE))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--budget", type=int, default=BUDGET, help="task-model calls per run")
    parser.add_argument("--stage", choices=("precheck", "methods", "yardstick", "all"), default="all")
    parser.add_argument("--rerun", action="store_true", help="run units the raw file has again (not prechecks)")
    parser.add_argument("--quick", action="store_true", help="1 regime, 1 task, 1 seed, budget 40, test 40; writes "
                                                             "no raw file and no RESULTS.md")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/quality"), help="runs and call cache")
    add_raw_options(parser, RAW)
    args = parser.parse_args(argv)
    if args.quick:
        args.regimes, args.tasks, args.seeds, args.budget = args.regimes[:1], args.tasks[:1], args.seeds[:1], 40
        args.out = args.out / "quick"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.from_raw:
            print(publish(json.loads(args.raw.read_text(encoding="utf-8")), args.results_md))
            return 0
        invocation: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        stamp(invocation, "benchmarks.quality", argv)
        results = RawResults(None if args.quick else args.raw, args.budget, invocation)
        measure(args, results)
    except PrompthoneError as exc:
        print(f"error: {exc}")
        return 2
    if args.quick:
        print(section(results.data))
        return 0
    print(publish(results.data, args.results_md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
