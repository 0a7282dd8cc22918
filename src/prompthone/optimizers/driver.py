"""The one loop every method runs in: budget, cache, run directory, callbacks, progress, finalization.

Finalization is the same for every method so that results compare: the method's top candidates and the
seed prompt are re-scored on the whole dev split, the best on dev wins (ties go to the seed, so the
returned prompt is never worse than the seed on dev and differs from it only when strictly better), and
the seed and the winner are scored on the test split. Finalization calls go through the same cache but
are counted apart from the search budget (`final_spend`).
"""

from __future__ import annotations

import logging
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.errors import BudgetExhausted
from prompthone.evaluation.budget import Budget, BudgetMeter, Spend
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, Evaluator, ScoringMode
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Model
from prompthone.optimizers import checkpoint
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.progress import RunProgress
from prompthone.prompts.prompt import Prompt
from prompthone.store.run_dir import RunDirectory, new_run_id
from prompthone.tasks.example import Task, example_key

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """What callbacks receive after each step."""

    step: int
    best_id: int | None
    best_score: float | None
    spend: dict[str, object]
    elapsed_s: float
    frontier: list[int] = field(default_factory=list)


@dataclass
class OptimizationResult:
    """The outcome of a run: the seed and best prompts with their dev/test scores and what it cost."""

    method: str
    task: str
    best_prompt: Prompt
    seed_prompt: Prompt
    best_dev_score: float
    seed_dev_score: float
    test_score: float
    seed_test_score: float
    best_candidate_id: int
    spend: dict[str, object]
    final_spend: dict[str, object]
    stopped_reason: str
    steps: int
    n_candidates: int
    wall_time_s: float
    run_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["best_prompt"] = self.best_prompt.to_dict()
        data["seed_prompt"] = self.seed_prompt.to_dict()
        return data


def run_optimization(task: Task, optimizer: Optimizer, *, task_model: Model, meta_model: Model | None = None,
                     budget: Budget | None = None, cache: CallCache | None = None, seed: int = 0,
                     run_root: str | Path | None = "runs", scoring: ScoringMode = "auto",
                     final_top_k: int = 3, progress: bool = True,
                     callbacks: Sequence[Callable[[StepRecord], None]] = (),
                     on_checkpoint: Callable[[int, dict[str, Any]], None] | None = None,
                     resume: dict[str, Any] | None = None) -> OptimizationResult:
    """Run `optimizer` on `task` until it finishes or the budget is spent, then finalize and record.

    `on_checkpoint(step, checkpoint)` receives a resume point after every finished step; `resume` continues
    from one (`optimizers.checkpoint`): the same task, method, options, seed and cache then give the result
    the run would have had without the stop, with the calls it had finished answered by the cache.
    """
    started = time.monotonic()
    meter = BudgetMeter(budget)
    run = RunDirectory(run_root, new_run_id(optimizer.name, task.name)) if run_root is not None else None
    ui = RunProgress(meter, enabled=progress, label=f"{optimizer.name} on {task.name}")
    task_metered = MeteredModel(task_model, meter=meter, cache=cache, role="task", on_result=ui.tick)
    meta_metered = MeteredModel(meta_model or task_model, meter=meter, cache=cache, role="meta",
                                on_result=ui.tick)
    evaluator = Evaluator(task, task_metered, mode=scoring)
    seed_prompt = Prompt(task.instruction, output_format=task.output_format)

    def record_candidate(cand: Candidate) -> None:
        if run is not None:
            run.append("candidates.jsonl", {**cand.to_dict(), "calls_so_far": meter.spend.calls})

    def record_event(event: dict[str, Any]) -> None:
        if run is not None:
            run.append("events.jsonl", {"method": optimizer.name, **event, "calls_so_far": meter.spend.calls})

    def record_evaluation(cand: Candidate, key: str, result: EvalResult) -> None:
        if run is not None:
            run.append_many("evaluations.jsonl", [
                {"candidate": cand.id, "key": key, "hash": example_key(r.input, r.target), "prediction": r.prediction,
                 "score": r.score} for r in result.examples])

    ctx = OptimizationContext(task, evaluator, meta_metered, random.Random(seed), seed_prompt, record_candidate,
                              record_event, record_evaluation)
    state = OptimizationState()
    seed_cand = ctx.new_candidate(state, seed_prompt, parent=None, origin="seed")
    assert seed_cand is not None
    state.frontier = [seed_cand.id]
    if resume is not None:
        state = checkpoint.restore(resume, ctx, meter, optimizer)
        seed_cand = state.pool[0]
    if run is not None:
        run.write_json("config.json", _config(task, optimizer, task_metered, meta_metered, budget, seed, scoring,
                                              evaluator.mode))
        run.append_many("examples.jsonl", [
            {"hash": ex.key, "split": split, "index": i, "input": ex.input, "target": ex.target}
            for split in ("train", "dev", "test") for i, ex in enumerate(task.split(split))])
    stopped = "finished"
    with ui:
        ui.phase("search")
        try:
            if resume is None:
                optimizer.start(ctx, state)
            while not state.done:
                state = optimizer.step(ctx, state)
                record = _step_record(optimizer, state, meter, started)
                ui.update_best(record.best_score)
                if run is not None:
                    run.append("steps.jsonl", record.__dict__)
                if on_checkpoint is not None:
                    on_checkpoint(state.step, checkpoint.capture(state, ctx, meter, optimizer))
                for callback in callbacks:
                    callback(record)
        except BudgetExhausted as exc:
            stopped = "budget"
            log.info("stopping: %s", exc)
        except KeyboardInterrupt:
            stopped = "interrupted"
            log.warning("interrupted: finalizing with the candidates scored so far")
        result = _finalize(ctx, state, optimizer, seed_cand, task_model, cache, final_top_k, ui,
                           skip_calls=stopped == "interrupted")
    out = OptimizationResult(
        method=optimizer.name, task=task.name, seed_prompt=seed_prompt, stopped_reason=stopped,
        steps=state.step, n_candidates=len(state.pool), spend=meter.spend.to_dict(),
        wall_time_s=round(time.monotonic() - started, 3), run_dir=str(run.path) if run else None,
        options={k: getattr(optimizer, k) for k in optimizer.knobs()}, **result)
    if run is not None:
        run.write_json("result.json", out.to_dict())
    if stopped == "interrupted":
        raise KeyboardInterrupt
    return out


def _finalize(ctx: OptimizationContext, state: OptimizationState, optimizer: Optimizer, seed_cand: Candidate,
              task_model: Model, cache: CallCache | None, top_k: int, ui: RunProgress,
              skip_calls: bool) -> dict[str, Any]:
    """Re-rank the top candidates on the full dev split and score the seed and the winner on test.

    `top_k=0` skips the dev re-ranking: the method's own best is reported as is (for budgets too small to pay
    for a full dev pass per finalist; the run then cannot fall back to the seed on dev evidence).
    """
    final_meter = BudgetMeter(None)
    evaluator = Evaluator(ctx.task, MeteredModel(task_model, meter=final_meter, cache=cache, role="final",
                                                 on_result=ui.tick),
                          mode=ctx.evaluator.mode, max_tokens=ctx.evaluator.max_tokens)
    final_ctx = OptimizationContext(ctx.task, evaluator, ctx.meta_model, ctx.rng, ctx.seed_prompt, ctx._on_candidate,
                                    on_evaluation=ctx._on_evaluation)
    if top_k == 0:
        best = (optimizer.top(state, 1) or [seed_cand])[0]
    else:
        # The seed comes first so that a tie on dev keeps the seed: never report a change that is not better.
        finalists = [seed_cand] + [c for c in optimizer.top(state, top_k) if c.id != seed_cand.id]
        if skip_calls:
            finalists = [c for c in finalists if "dev" in c.scores] or [seed_cand]
        else:
            ui.phase("final: scoring finalists on dev")
            for cand in finalists:
                if "dev" not in cand.scores:
                    final_ctx.score(cand, ctx.task.dev, "dev")
        best = min(finalists, key=lambda c: (-c.scores.get("dev", float("-inf")), finalists.index(c)))
    if not skip_calls and ctx.task.test:  # a task without a test split (the peer benchmark's runners) reports NaN
        ui.phase("final: scoring seed and best on test")
        for cand in {seed_cand.id: seed_cand, best.id: best}.values():
            if "test" not in cand.scores:
                final_ctx.score(cand, ctx.task.test, "test")
    nan = float("nan")
    return {"best_prompt": best.prompt, "best_candidate_id": best.id,
            "best_dev_score": best.scores.get("dev", nan), "seed_dev_score": seed_cand.scores.get("dev", nan),
            "test_score": best.scores.get("test", nan), "seed_test_score": seed_cand.scores.get("test", nan),
            "final_spend": final_meter.spend.to_dict()}


def _step_record(optimizer: Optimizer, state: OptimizationState, meter: BudgetMeter,
                 started: float) -> StepRecord:
    top = optimizer.top(state, 1)
    return StepRecord(step=state.step, best_id=top[0].id if top else None,
                      best_score=top[0].scores[optimizer.rank_key] if top else None,
                      spend=meter.spend.to_dict(), elapsed_s=round(time.monotonic() - started, 3),
                      frontier=list(state.frontier))


def _config(task: Task, optimizer: Optimizer, task_model: MeteredModel, meta_model: MeteredModel,
            budget: Budget | None, seed: int, scoring: str, mode: str) -> dict[str, Any]:
    from prompthone import __version__

    return {"method": optimizer.name, "options": {k: getattr(optimizer, k) for k in optimizer.knobs()},
            "task": {"name": task.name, "metric": task.metric, "labels": task.labels,
                     "sizes": {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)}},
            "task_model": task_model.id, "meta_model": meta_model.id,
            "budget": {"calls": budget.calls if budget else None, "tokens": budget.tokens if budget else None},
            "seed": seed, "scoring": scoring, "scoring_mode": mode,
            "versions": {"prompthone": __version__, "python": platform.python_version()}}


__all__ = ["OptimizationResult", "Spend", "StepRecord", "run_optimization"]
