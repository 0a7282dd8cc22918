"""The one loop every method runs in: budget, cache, run directory, callbacks, progress, finalization.

Finalization is the same for every method so that results compare: the method's top candidates and the
seed prompt are re-scored on the whole dev split, the best on dev wins (ties go to the seed, so the
returned prompt is never worse than the seed on dev and differs from it only when strictly better), and
the seed and the winner are scored on the test split. Finalization calls go through the same cache but
are counted apart from the search budget (`final_spend`).

Server backends that count their faults (`OpenAICompatModel.stats`: retries, 429s, timeouts, ...) have them
recorded per role in every step record and in the result (`backend`), so a run says what its server did. A
backend that fails for good (`BackendError`: retries spent, server gone) stops the run as `failed`, with its
finished steps and resume point kept and the error in the stored result, and `resume` continues it.
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

from prompthone.errors import BackendError, BudgetExhausted
from prompthone.evaluation.budget import Budget, BudgetMeter, Spend
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, Evaluator, ScoringMode
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Model
from prompthone.optimizers import checkpoint
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.optimizers.recorder import RunRecorder
from prompthone.progress import RunProgress, fault_summary
from prompthone.prompts.prompt import Prompt
from prompthone.store.db import RunStore
from prompthone.store.run_dir import new_run_id
from prompthone.tasks.example import Task

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
    backend: dict[str, dict[str, int]] = field(default_factory=dict)


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
    backend: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["best_prompt"] = self.best_prompt.to_dict()
        data["seed_prompt"] = self.seed_prompt.to_dict()
        return data


def run_optimization(task: Task, optimizer: Optimizer, *, task_model: Model, meta_model: Model | None = None,
                     budget: Budget | None = None, cache: CallCache | None = None, seed: int = 0,
                     run_root: str | Path | None = "runs", store: RunStore | str | Path | None = None,
                     scoring: ScoringMode = "auto", final_top_k: int = 3, progress: bool = True,
                     callbacks: Sequence[Callable[[StepRecord], None]] = (),
                     on_checkpoint: Callable[[int, dict[str, Any]], None] | None = None,
                     resume: dict[str, Any] | None = None, recorder: RunRecorder | None = None,
                     provenance: dict[str, Any] | None = None,
                     on_start: Callable[[str, dict[str, Any]], None] | None = None) -> OptimizationResult:
    """Run `optimizer` on `task` until it finishes or the budget is spent, then finalize and record.

    Records go to a run store (`store`, default `<run_root>/prompthone.sqlite`) as they happen, with a resume
    point after every step; the run directory `<run_root>/<run id>` is exported from it when the run ends.
    `run_root=None` records nothing. `recorder` continues an existing run of the store instead (see
    `api.resume`). `on_checkpoint(step, checkpoint)` also receives each resume point; `resume` continues from
    one (`optimizers.checkpoint`): the same task, method, options, seed and cache then give the result the run
    would have had without the stop, the calls it had finished answered by the cache. `provenance` (how to
    rebuild the task and models) goes into the run's config for `resume`. `on_start(run_id, config)` is told the
    run's id and config before the first step (trackers such as MLflow name their run after it).
    """
    started = time.monotonic()
    meter = BudgetMeter(budget)
    ui = RunProgress(meter, enabled=progress, label=f"{optimizer.name} on {task.name}")
    task_metered = MeteredModel(task_model, meter=meter, cache=cache, role="task", on_result=ui.tick)
    meta_metered = MeteredModel(meta_model or task_model, meter=meter, cache=cache, role="meta",
                                on_result=ui.tick)
    evaluator = Evaluator(task, task_metered, mode=scoring)
    seed_prompt = Prompt(task.instruction, output_format=task.output_format)
    owned: RunStore | None = None
    if recorder is None and run_root is not None:
        owned = open_store(store, run_root)
        config = _config(task, optimizer, task_metered, meta_metered, budget, seed, scoring, evaluator.mode,
                         final_top_k, provenance)
        recorder = RunRecorder.create(owned, new_run_id(optimizer.name, task.name), task=task, method=optimizer.name,
                                      seed=seed, config=config, export_root=Path(run_root))
    rec = recorder
    if on_start is not None and rec is not None:
        on_start(rec.run_id, rec.store.get_run(rec.run_id).config)
    faults = BackendFaults(task_model, meta_model)

    def record_candidate(cand: Candidate) -> None:
        if rec is not None:
            rec.candidate({**cand.to_dict(), "calls_so_far": meter.spend.calls})

    def record_event(event: dict[str, Any]) -> None:
        if rec is not None:
            rec.event({"method": optimizer.name, **event, "calls_so_far": meter.spend.calls})

    def record_evaluation(cand: Candidate, key: str, result: EvalResult) -> None:
        if rec is not None:
            rec.evaluations(cand.id, key, result)

    ctx = OptimizationContext(task, evaluator, meta_metered, random.Random(seed), seed_prompt, record_candidate,
                              record_event, record_evaluation)
    state = OptimizationState()
    seed_cand = ctx.new_candidate(state, seed_prompt, parent=None, origin="seed")
    assert seed_cand is not None
    state.frontier = [seed_cand.id]
    if resume is not None:
        state = checkpoint.restore(resume, ctx, meter, optimizer)
        seed_cand = state.pool[0]
        if rec is not None:  # the store back to the resume point: later records go, restored candidates return
            faults.carried = _counted_before(rec, state.step)
            rec.rewind(state.step, ctx.next_id)
            for cand in state.pool.values():
                record_candidate(cand)
    stopped, status = "finished", "failed"
    result_data: dict[str, Any] | None = None
    failure: BackendError | None = None
    searching = True
    try:
        with ui:
            ui.phase("search")
            try:
                if resume is None:
                    optimizer.start(ctx, state)
                while not state.done:
                    state = optimizer.step(ctx, state)
                    record = _step_record(optimizer, state, meter, started, faults)
                    ui.update_best(record.best_score)
                    point = None
                    if rec is not None or on_checkpoint is not None:
                        point = checkpoint.capture(state, ctx, meter, optimizer)
                    if rec is not None:
                        rec.step(record.__dict__, point)
                    if on_checkpoint is not None and point is not None:
                        on_checkpoint(state.step, point)
                    for callback in callbacks:
                        callback(record)
            except BudgetExhausted as exc:
                stopped = "budget"
                log.info("stopping: %s", exc)
            except KeyboardInterrupt:
                stopped = "interrupted"
                log.warning("interrupted: finalizing with the candidates scored so far")
            searching = False
            result = _finalize(ctx, state, optimizer, seed_cand, task_model, cache, final_top_k, ui,
                               skip_calls=stopped == "interrupted")
        out = OptimizationResult(
            method=optimizer.name, task=task.name, seed_prompt=seed_prompt, stopped_reason=stopped,
            steps=state.step, n_candidates=len(state.pool), spend=meter.spend.to_dict(),
            wall_time_s=round(time.monotonic() - started, 3),
            run_dir=str(rec.path) if rec is not None and rec.path is not None else None,
            options={k: getattr(optimizer, k) for k in optimizer.knobs()}, backend=faults.counts(), **result)
        result_data = out.to_dict()
        status = "interrupted" if stopped == "interrupted" else "finished"
    except BackendError as exc:  # the server is gone (or refuses): keep what is finished, say how to go on
        failure = exc
        result_data = {"method": optimizer.name, "task": task.name, "stopped_reason": "backend_error",
                       "error": str(exc), "steps": state.step, "n_candidates": len(state.pool),
                       "spend": meter.spend.to_dict(), "wall_time_s": round(time.monotonic() - started, 3),
                       "backend": faults.counts()}  # no scores: the run is not over; `resume` continues it
    finally:
        if rec is not None:
            rec.finish(status, result_data)
        if owned is not None:
            owned.close()
    if failure is not None:
        if rec is None:
            raise failure
        where = f"during step {state.step + 1}" if searching else "while scoring the finalists"
        raise BackendError(_stopped_message(rec.run_id, where, state.step, failure, faults.counts())) from failure
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
                 started: float, faults: BackendFaults) -> StepRecord:
    top = optimizer.top(state, 1)
    return StepRecord(step=state.step, best_id=top[0].id if top else None,
                      best_score=top[0].scores[optimizer.rank_key] if top else None,
                      spend=meter.spend.to_dict(), elapsed_s=round(time.monotonic() - started, 3),
                      frontier=list(state.frontier), backend=faults.counts())


class BackendFaults:
    """What the run's server backends counted (`stats` of e.g. `OpenAICompatModel`: requests, retries, failures,
    timeouts, connection errors, malformed replies, `http_<status>`), by role, since the run started here.

    Backends keep counting over their life (one model may serve several runs in a process), so the counts are the
    difference from a snapshot taken at the start, plus `carried`: what earlier processes of a resumed run counted.
    A meta model that is the task model is counted once, under "task". Models without `stats` are left out.
    """

    def __init__(self, task_model: Model, meta_model: Model | None) -> None:
        self.models: dict[str, Any] = {}
        for role, model in (("task", task_model), ("meta", meta_model)):
            if model is not None and isinstance(getattr(model, "stats", None), dict) \
                    and all(model is not m for m in self.models.values()):
                self.models[role] = model
        self.start = {role: dict(model.stats) for role, model in self.models.items()}
        self.carried: dict[str, dict[str, int]] = {}

    def counts(self) -> dict[str, dict[str, int]]:
        """Per role, every counter that is not zero (requests, retries and failures always)."""
        out: dict[str, dict[str, int]] = {}
        for role in dict.fromkeys([*self.models, *self.carried]):
            now = dict(self.models[role].stats) if role in self.models else {}
            start, before = self.start.get(role, {}), self.carried.get(role, {})
            keys = dict.fromkeys(["requests", "retries", "failures", *sorted({*now, *before})])
            totals = {k: int(before.get(k, 0)) + int(now.get(k, 0)) - int(start.get(k, 0)) for k in keys}
            out[role] = {k: v for k, v in totals.items() if v or k in ("requests", "retries", "failures")}
        return out


def _counted_before(rec: RunRecorder, step: int) -> dict[str, dict[str, int]]:
    """The fault counts of the processes that worked on a run before this resume: the stopped run's result when it
    recorded one (a backend failure), else the counts at the step the run resumes from (a kill loses the rest)."""
    previous = rec.store.get_run(rec.run_id).result or {}
    if isinstance(previous.get("backend"), dict):
        return previous["backend"]
    at_step = [s for s in rec.store.steps(rec.run_id) if s.get("step") == step]
    backend = at_step[0].get("backend") if at_step else None
    return backend if isinstance(backend, dict) else {}


def _stopped_message(run_id: str, where: str, step: int, error: BackendError,
                     counts: dict[str, dict[str, int]]) -> str:
    """One line for the user: what failed, what is kept, how to continue."""
    faults = fault_summary(counts)
    kept = (f"Its {step} finished step{'s' if step != 1 else ''} and resume point are stored" if step
            else "It is stored with its seed and settings (no step had finished)")
    return (f"run {run_id} stopped {where}: {error}"
            f"{f' ({faults})' if faults else ''}. {kept}: once the cause is fixed (the server answers again), "
            f"continue it with `prompthone optimize --resume {run_id}` (with the same --runs-dir/--store; Python: "
            f"ph.resume({run_id!r}))")


def open_store(store: RunStore | str | Path | None, run_root: str | Path) -> RunStore:
    """The store a run records into: the one given (an open store, a URL or a path) or the default one."""
    if isinstance(store, RunStore):
        return store
    return RunStore(store) if store is not None else RunStore.default(Path(run_root))


def _config(task: Task, optimizer: Optimizer, task_model: MeteredModel, meta_model: MeteredModel,
            budget: Budget | None, seed: int, scoring: str, mode: str, final_top_k: int,
            provenance: dict[str, Any] | None) -> dict[str, Any]:
    """What was asked, with versions; with the task's own fields, so that a resume can rebuild the task from the
    store's examples alone, and `provenance` (model specs, cache file) for rebuilding the rest."""
    from prompthone import __version__

    return {"method": optimizer.name, "options": {k: getattr(optimizer, k) for k in optimizer.knobs()},
            "task": {"name": task.name, "metric": task.metric, "labels": task.labels,
                     "instruction": task.instruction, "output_format": task.output_format,
                     "description": task.description,
                     "sizes": {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)}},
            "task_model": task_model.id, "meta_model": meta_model.id,
            "budget": {"calls": budget.calls if budget else None, "tokens": budget.tokens if budget else None,
                       "task_calls": budget.task_calls if budget else None},
            "seed": seed, "scoring": scoring, "scoring_mode": mode, "final_top_k": final_top_k,
            "provenance": provenance or {},
            "versions": {"prompthone": __version__, "python": platform.python_version()}}


__all__ = ["OptimizationResult", "Spend", "StepRecord", "run_optimization"]
