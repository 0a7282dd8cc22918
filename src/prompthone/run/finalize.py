"""The end of every run, the same for every method so that results compare.

The method's top candidates and the seed prompt are scored on the whole dev split, the best on dev wins (ties go to
the seed, so the returned prompt is never worse than the seed on dev and differs from it only when strictly
better), and the seed and the winner are scored on the test split. A candidate that the method already scored on
exactly the whole dev split (`Candidate.full_dev`, e.g. MIPRO's full evaluations) keeps that score as its dev score:
nothing is scored twice. Finalization calls go through the run's cache but are counted apart from the search
budget (`final_spend`). The winner and the seed, scored on the same test examples, are compared pair by pair
(`evaluation.statistics`): the difference, its 95% bootstrap interval and the exact test (`test_comparison`).
Under a calibration the seed candidate is the calibrated seed; the winner is also compared with the seed as
written, uncalibrated (`vs_uncalibrated_seed`), read from the same test calls.
"""

from __future__ import annotations

from typing import Any

from prompthone.evaluation.evaluator import EvalResult, Evaluator
from prompthone.evaluation.statistics import compare_results
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.run.recorder import Recorder
from prompthone.run.session import Session


def finalize(ctx: OptimizationContext, state: OptimizationState, optimizer: Optimizer, seed_cand: Candidate,
             final: Session, recorder: Recorder, top_k: int, skip_calls: bool) -> dict[str, Any]:
    """Re-rank the top candidates on the full dev split and score the seed and the winner on test.

    `top_k=0` skips the dev re-ranking: the method's own best is reported as is (for budgets too small to pay
    for a full dev pass per finalist; the run then cannot fall back to the seed on dev evidence). `skip_calls`
    (an interrupted run) ranks only what is already scored on dev and scores nothing new.
    """
    evaluator = final.evaluator(ctx.task, ctx.evaluator.model.model, role="final", mode=ctx.evaluator.mode,
                                max_tokens=ctx.evaluator.max_tokens)
    final_ctx = ctx.with_evaluator(evaluator)
    if top_k == 0:
        best = (optimizer.top(state, 1) or [seed_cand])[0]
    else:
        # The seed comes first so that a tie on dev keeps the seed: never report a change that is not better.
        finalists = [seed_cand] + [c for c in optimizer.top(state, top_k) if c.id != seed_cand.id]
        for cand in finalists:
            _reuse_full_dev(final_ctx, cand, recorder)
        if skip_calls:
            finalists = [c for c in finalists if ScoreKey.DEV in c.scores] or [seed_cand]
        else:
            final.ui.phase("final: scoring finalists on dev")
            for cand in finalists:
                if ScoreKey.DEV not in cand.scores:
                    final_ctx.score(cand, ctx.task.dev, ScoreKey.DEV)
        best = min(finalists, key=lambda c: (-c.scores.get(ScoreKey.DEV, float("-inf")), finalists.index(c)))
    tested: dict[int, EvalResult] = {}
    if not skip_calls and ctx.task.test:  # a task without a test split (the peer benchmark's runners) reports NaN
        final.ui.phase("final: scoring seed and best on test")
        for cand in {seed_cand.id: seed_cand, best.id: best}.values():
            if ScoreKey.TEST not in cand.scores:
                tested[cand.id] = final_ctx.score(cand, ctx.task.test, ScoreKey.TEST)
    nan = float("nan")
    comparison = None
    if seed_cand.id in tested and best.id in tested:
        comparison = compare_results(tested[best.id], tested[seed_cand.id], ctx.task).to_dict()
    return {**_against_uncalibrated_seed(evaluator, seed_cand, best, tested),
            "best_prompt": best.prompt, "best_candidate_id": best.id,
            "best_dev_score": best.scores.get(ScoreKey.DEV, nan),
            "seed_dev_score": seed_cand.scores.get(ScoreKey.DEV, nan),
            "test_score": best.scores.get(ScoreKey.TEST, nan),
            "seed_test_score": seed_cand.scores.get(ScoreKey.TEST, nan),
            "test_comparison": comparison, "final_spend": final.meter.spend.to_dict()}


def _against_uncalibrated_seed(evaluator: Evaluator, seed: Candidate, best: Candidate,
                               tested: dict[int, EvalResult]) -> dict[str, Any]:
    """Under a calibration, the seed as the user wrote it (no prior divided out), read from the label
    log-probabilities of its test scoring (no call), and the winner against it: what the run gained in all."""
    if seed.prompt.calibration is None or seed.id not in tested or best.id not in tested:
        return {}
    raw = evaluator.rescore(tested[seed.id], None)
    return {"uncalibrated_seed_test_score": raw.score,
            "vs_uncalibrated_seed": compare_results(tested[best.id], raw, evaluator.task).to_dict()}


def _reuse_full_dev(ctx: OptimizationContext, cand: Candidate, recorder: Recorder) -> None:
    """A score the method has on exactly the whole dev split becomes the candidate's dev score, with its records."""
    key = cand.full_dev
    if ScoreKey.DEV in cand.scores or key is None or key not in cand.scores:
        return
    ctx.record_score(cand, ScoreKey.DEV, cand.scores[key], cand.n_scored[key])
    recorder.reuse_evaluations(cand.id, key, ScoreKey.DEV)
