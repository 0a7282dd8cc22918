"""Run one prompthone method as a system of the peer benchmark, under the same contract as every peer.

`job.system` is `prompthone-<method>` and `job.options` are the method's knobs. prompthone talks to the counting
proxy through its OpenAI-compatible backend, so it pays for every call exactly as the peers do; what it can use
that the peers cannot is label scoring by log-probabilities (`top_logprobs` on a one-token completion), which is
what it does on classification tasks. With a separate proposer (`job.separate_proposer`) the proposer's account is
prompthone's meta model (an OpenAI-compatible model on `job.proposer_url`) and the budget is a task-call budget
(`Budget(task_calls=...)`, as `prompthone compare` equalizes methods); else the task model is its own meta model
and the budget counts every call.

The budget at the proxy covers everything prompthone does, including its finalization (re-scoring the seed and
the top k candidates on the full dev split), so the search gets the budget minus a reserve of (1 + k) x |dev|
calls, with k = 3 (the default) when that reserve is at most half the budget, else k = 1, else no re-ranking
(k = 0: the method's own best is reported). Whatever the reserve does not need (finalists already scored on dev are
answered by the run's own call cache) stays unspent. `auto` is the exception: its successive-halving race on dev
*is* its selection (the seed arm races too, and ties go to the earlier, simpler arm), so it runs with k = 0 and
the whole budget goes to the race, as in `prompthone optimize`, where finalization is not charged to the budget.
The call cache lives in the run's directory and dies with it: nothing carries over between runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import traceback
from importlib.metadata import version
from pathlib import Path

from benchmarks.peers.job import Job, Pair, PeerResult, is_budget_refusal, main_job

MAX_RESERVE_SHARE = 0.5  # at most this share of the budget is set aside for the final dev re-ranking


#: methods whose own ranking is a full selection on dev (no reserve for a re-ranking that would repeat it)
SELECTS_ON_DEV = ("auto",)


def final_top_k(budget: int, dev_size: int, method: str = "") -> int:
    """The largest of 3, 1, 0 finalists whose dev re-ranking (seed included) fits in the reserve share; 0 for a
    method that already selects on dev (`SELECTS_ON_DEV`)."""
    if method in SELECTS_ON_DEV:
        return 0
    return next((k for k in (3, 1) if (1 + k) * dev_size <= MAX_RESERVE_SHARE * budget), 0)


def run(job: Job) -> PeerResult:
    import prompthone as ph
    from prompthone.evaluation.budget import Budget
    from prompthone.models.openai_compat import OpenAICompatModel
    from prompthone.tasks.example import Example, Task

    method = job.system.removeprefix("prompthone-")
    train = tuple(Example(p.input, p.target, {"id": f"train-{i}"}) for i, p in enumerate(job.train))
    dev = tuple(Example(p.input, p.target, {"id": f"dev-{i}"}) for i, p in enumerate(job.dev))
    task = Task(job.task, train, dev, (), metric=job.metric, labels=tuple(job.labels) if job.labels else None,
                instruction=job.instruction, output_format=job.output_format)
    top_k = final_top_k(job.budget_calls, len(dev), method)
    reserve = (1 + top_k) * len(dev) if top_k else 0
    search_calls = job.budget_calls - reserve
    out = Path(job.out_dir)
    budget = Budget(task_calls=search_calls) if job.separate_proposer else Budget(calls=search_calls)
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(OpenAICompatModel(job.base_url, job.model, timeout=900.0, max_retries=3,
                                                      max_concurrency=4))
        meta = stack.enter_context(OpenAICompatModel(job.proposer_url, job.proposer, timeout=900.0, max_retries=3,
                                                     max_concurrency=4)) if job.separate_proposer else None
        result = ph.optimize(task, method=method, model=model, meta_model=meta, budget=budget, seed=job.seed,
                             options=dict(job.options), run_dir=out / "runs", cache=out / "calls.sqlite",
                             progress=False, final_top_k=top_k)
    best = result.best_prompt
    kept = best.instruction.strip() == job.instruction.strip() and not best.demos and best.calibration is None
    why = (f"kept the seed prompt: no candidate scored above it on dev (seed {result.seed_dev_score:.3f}); "
           if kept else "")
    return PeerResult(
        "ok", best.instruction, demos=[Pair(d.input, d.target) for d in best.demos], version=version("prompthone"),
        # NaN when nothing re-scored the winner on the whole dev split (k = 0): no own score, not a NaN in JSON
        internal_score=result.best_dev_score if math.isfinite(result.best_dev_score) else None,
        detail=f"{why}stopped: {result.stopped_reason}; search budget {search_calls} calls + {reserve} reserved for "
               f"finalization (top {top_k})",
        extra={"steps": result.steps, "candidates": result.n_candidates, "spend": result.spend,
               "final_spend": result.final_spend, "seed_dev_score": result.seed_dev_score,
               "run_dir": result.run_dir},
        calibration=best.calibration.to_dict() if best.calibration is not None else None)


def main() -> None:
    job = main_job()
    os.makedirs(job.out_dir, exist_ok=True)
    try:
        result = run(job)
    except Exception as exc:  # the contract: always write a result, say why it failed
        status = "cut_off" if is_budget_refusal(exc) else "failed"
        traceback.print_exc(file=sys.stderr)
        result = PeerResult(status, job.instruction, detail=f"{type(exc).__name__}: {exc}"[:2000])
    result.write(job.result_path)


if __name__ == "__main__":
    main()
