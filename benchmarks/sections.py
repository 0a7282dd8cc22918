"""The four benchmarks. Each returns a plain dict: absolute numbers, the baseline's, and their ratio.

Every ratio compares two things measured in the same process on the same model instance, one right after
the other, so machine load and llama.cpp's build cancel out as far as they can; absolute seconds are kept
beside each ratio for context, not for comparison across runs.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import prompthone as ph
from benchmarks.harness import (
    FullReevaluationModel,
    RecordingModel,
    direct_generate,
    direct_label_logprobs,
    eval_examples,
    evaluator,
    max_abs_diff,
    prepare_generation,
    prepare_scoring,
    scoring_requests,
    seed_prompt,
    time_pair,
    timed,
    warm_up_example,
)
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import CallCache, NullCache
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.llamacpp import LlamaCppModel
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Task

# The APE settings of the cache benchmark: small enough for a benchmark, with every phase (proposal,
# scoring, Monte-Carlo resampling, final scoring) present.
APE_OPTIONS: dict[str, Any] = {"num_subsamples": 2, "num_prompts_per_subsample": 3, "eval_samples": 16,
                               "mc_rounds": 1, "mc_top_k": 2, "mc_samples_per_prompt": 2}


def evaluator_overhead(model: LlamaCppModel, task: Task, n: int, repeats: int) -> dict[str, Any]:
    """Evaluator throughput vs the same requests sent straight to `llama_cpp.Llama`, in both scoring modes.

    The requests are recorded from the evaluator's warm-up pass and replayed by the direct loops, so both
    sides do exactly the same llama.cpp work; the direct side's prompt tokenization is done before timing
    and reported apart (`baseline_prep_s`), so the ratio charges prompthone for rendering and tokenizing.
    """
    prompt, examples = seed_prompt(task), eval_examples(task, n)
    result: dict[str, Any] = {"task": task.name, "n": len(examples), "repeats": repeats}
    for mode in ("generate", "labels"):
        recorder = RecordingModel(model)
        reference = evaluator(task, recorder, mode).evaluate(prompt, examples)  # warm-up + the requests
        ours = evaluator(task, model, mode)
        if mode == "generate":
            prepared_gen, prep_s = timed(partial(prepare_generation, model, recorder.generation_requests))
            res, texts, pair = time_pair(partial(ours.evaluate, prompt, examples),
                                         partial(direct_generate, model, prepared_gen), repeats)
            same = [r.raw for r in res.examples] == texts and [r.raw for r in reference.examples] == texts
            check: dict[str, Any] = {"identical_outputs": same}
        else:
            prepared_lab, prep_s = timed(partial(prepare_scoring, model, recorder.scoring_requests))
            metered = MeteredModel(model, meter=BudgetMeter(), cache=NullCache())
            ours_scores = [s.logprobs for s in metered.score(recorder.scoring_requests)]
            res, direct, pair = time_pair(partial(ours.evaluate, prompt, examples),
                                          partial(direct_label_logprobs, model, prepared_lab), repeats)
            labels = tuple(task.labels or ())
            direct_pred = [labels[max(range(len(labels)), key=s.__getitem__)] for s in direct]
            check = {"identical_predictions": [r.prediction for r in res.examples] == direct_pred,
                     "max_abs_logprob_diff": max_abs_diff(ours_scores, direct)}
        result[mode] = {**pair.to_dict(), **check, "baseline_prep_s": prep_s, "accuracy": res.score,
                        "ours_examples_per_s": len(examples) / pair.ours_s,
                        "baseline_examples_per_s": len(examples) / pair.baseline_s,
                        "throughput_ratio": pair.baseline_s / pair.ours_s}
    return result


def labels_vs_generate(model: LlamaCppModel, tasks: Sequence[Task],
                       limit: int | None) -> list[dict[str, Any]]:
    """The seed prompt on each task's dev+test examples, by label log-probabilities and by generate-and-parse.

    `unparsed` counts generated replies from which no label could be extracted (they score 0): the reason
    generate-and-parse loses accuracy with a small chatty model.
    """
    rows = []
    for task in tasks:
        prompt, examples = seed_prompt(task), eval_examples(task, limit)
        row: dict[str, Any] = {"task": task.name, "n": len(examples)}
        for mode in ("labels", "generate"):
            ev = evaluator(task, model, mode)
            ev.evaluate(prompt, [warm_up_example(task)])  # caches this prompt's prefix
            res, seconds = timed(partial(ev.evaluate, prompt, examples))
            row[mode] = {"accuracy": res.score, "seconds": seconds, "examples_per_s": len(examples) / seconds,
                         "unparsed": sum(r.prediction is None for r in res.examples)}
        row["speed_ratio"] = row["labels"]["examples_per_s"] / row["generate"]["examples_per_s"]
        row["accuracy_delta"] = row["labels"]["accuracy"] - row["generate"]["accuracy"]
        rows.append(row)
    return rows


def _with_demos(task: Task, k: int) -> Prompt:
    return dataclasses.replace(seed_prompt(task), demos=tuple(task.train[:k]))


def prefix_reuse(model: LlamaCppModel, task: Task, n: int, repeats: int, demos: int) -> dict[str, Any]:
    """Label scoring keeping the shared prompt prefix in the KV cache vs re-evaluating every prompt in full.

    Measured for the seed prompt and for the seed prompt with `demos` training demos (a longer shared
    prefix, as optimizers that pick demos produce), through the metered model the evaluator uses. The
    log-probabilities must agree to 1e-4: reuse is an optimization, never a change in scores. The
    `exact_repeat` probe checks the one case where reuse re-evaluates a single token (see its docstring).
    """
    rows = []
    for label, prompt, size in (("seed prompt", seed_prompt(task), n),
                                (f"seed + {demos} demos", _with_demos(task, demos), max(2, n // 2))):
        requests = scoring_requests(task, prompt, eval_examples(task, size))
        reuse = MeteredModel(model, meter=BudgetMeter(), cache=NullCache())
        full = MeteredModel(FullReevaluationModel(model), meter=BudgetMeter(), cache=NullCache())
        reuse.score(scoring_requests(task, prompt, [warm_up_example(task)]))
        with_reuse, without, pair = time_pair(partial(reuse.score, requests), partial(full.score, requests),
                                              repeats)
        diff = max_abs_diff([s.logprobs for s in with_reuse], [s.logprobs for s in without])
        rows.append({"task": task.name, "prompt": label, "n": len(requests),
                     "prompt_tokens_mean": sum(s.prompt_tokens for s in with_reuse) / len(requests),
                     **pair.to_dict(), "speedup": pair.baseline_s / pair.ours_s,
                     "max_abs_logprob_diff": diff, "within_1e-4": diff <= 1e-4})
    return {"rows": rows, "exact_repeat": exact_repeat(model, task, min(n, 8))}


def exact_repeat(model: LlamaCppModel, task: Task, n: int) -> dict[str, Any]:
    """The same scoring request twice in a row: does the second (whole prompt already cached) agree?

    The backend re-evaluates at least two prompt tokens on a full prefix hit, because llama.cpp's
    one-token kernels round differently from its batched ones; this row checks that it still does (the
    run fails if the scores differ by more than 1e-4).
    """
    requests = scoring_requests(task, seed_prompt(task), eval_examples(task, n))
    first, again = [], []
    for request in requests:
        first.append(next(iter(model.score([request])))[1].logprobs)
        again.append(next(iter(model.score([request])))[1].logprobs)
    diff = max_abs_diff(first, again)
    flips = sum(max(range(len(a)), key=a.__getitem__) != max(range(len(b)), key=b.__getitem__)
                for a, b in zip(first, again, strict=True))
    return {"task": task.name, "n": len(requests), "max_abs_logprob_diff": diff, "within_1e-4": diff <= 1e-4,
            "prediction_flips": flips}


def cached_rerun(model: LlamaCppModel, task: Task, budget: int) -> dict[str, Any]:
    """A seeded APE run twice with one fresh call cache: the second run must be answered from it entirely.

    New model calls on the second run (search and final scoring) mean the cache key or the run's
    determinism is broken: a correctness failure, reported here and turned into a non-zero exit by run.py.
    """
    with tempfile.TemporaryDirectory(prefix="prompthone-bench-") as tmp:
        cache = CallCache(Path(tmp) / "calls.sqlite")
        try:
            def run() -> ph.OptimizationResult:
                return ph.optimize(task, method="ape", model=model, budget=budget, options=APE_OPTIONS,
                                   seed=0, run_dir=Path(tmp) / "runs", cache=cache, progress=False)

            first, first_s = timed(run)
            cached_entries = len(cache)
            second, second_s = timed(run)
        finally:
            cache.close()

    def new_calls(r: ph.OptimizationResult) -> int:
        return cast(int, r.spend["new_calls"]) + cast(int, r.final_spend["new_calls"])

    def calls(r: ph.OptimizationResult) -> int:
        return cast(int, r.spend["calls"]) + cast(int, r.final_spend["calls"])

    return {"task": task.name, "budget": budget, "options": APE_OPTIONS, "first_s": first_s,
            "second_s": second_s, "wall_ratio": second_s / first_s, "cache_entries": cached_entries,
            "first_calls": calls(first), "first_new_calls": new_calls(first), "second_calls": calls(second),
            "second_new_calls": new_calls(second),
            "same_result": (first.best_prompt == second.best_prompt
                            and first.best_dev_score == second.best_dev_score
                            and first.test_score == second.test_score),
            "best_dev_score": first.best_dev_score, "seed_dev_score": first.seed_dev_score}
