"""`run_optimization`: one method on one task, from its first step (or a resume point) to its recorded result.

It wires the run's rooms together: a `Session` meters the task and meta models, the recorder writes to the store,
`loop.search` steps the method and checkpoints it, `finalize` scores the finalists, `faults` counts what the
servers did. A backend that fails for good (`BackendError`: retries spent, server gone) stops the run as `failed`,
with its finished steps and resume point kept and the error in the stored result, and `resume` continues it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.errors import BackendError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import ScoringMode
from prompthone.evaluation.prices import Price, role_prices
from prompthone.evaluation.statistics import split_warnings
from prompthone.models.base import Model
from prompthone.optimizers.base import OptimizationContext, Optimizer
from prompthone.prompts.calibration import check_calibration
from prompthone.prompts.prompt import Prompt
from prompthone.run.config import RunConfig, TaskFields
from prompthone.run.estimate import estimate, warn_if_short
from prompthone.run.faults import BackendFaults, stopped_message
from prompthone.run.finalize import finalize
from prompthone.run.loop import Outcome, begin, search
from prompthone.run.recorder import NullRecorder, Recorder, RunRecorder
from prompthone.run.results import OptimizationResult, StepRecord
from prompthone.run.session import Session
from prompthone.store.db import RunStore
from prompthone.store.run_dir import new_run_id
from prompthone.tasks.example import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provenance:
    """How to build the run's models again (specs; None for an object or a spec holding credentials), its cache
    file and its executor's record: what `resume` needs beyond the store's examples."""

    model: str | None = None
    meta_model: str | None = None
    cache: str | None = None
    executor: dict[str, Any] | None = None


@dataclass
class Continuation:
    """A stored run to continue: its recorder, its stored config, the resume point to start from (None: from the
    start) and the fault counts of the processes that worked on it before."""

    recorder: RunRecorder
    config: RunConfig
    checkpoint: dict[str, Any] | None
    faults_before: dict[str, dict[str, int]] = field(default_factory=dict)


def run_optimization(task: Task, optimizer: Optimizer, *, task_model: Model, meta_model: Model | None = None,
                     budget: Budget | None = None, cache: CallCache | None = None, seed: int = 0,
                     run_root: str | Path | None = "runs", store: RunStore | str | Path | None = None,
                     scoring: ScoringMode = "auto", calibration: str = "none", final_top_k: int = 3,
                     progress: bool = True, callbacks: Sequence[Callable[[StepRecord], None]] = (),
                     on_checkpoint: Callable[[int, dict[str, Any]], None] | None = None,
                     resume: dict[str, Any] | None = None, continuation: Continuation | None = None,
                     provenance: Provenance | None = None, prices: Mapping[str, Price] | None = None,
                     on_start: Callable[[str, RunConfig], None] | None = None) -> OptimizationResult:
    """Run `optimizer` on `task` until it finishes or the budget is spent, then finalize and record.

    Records go to a run store (`store`, default `<run_root>/prompthone.sqlite`) as they happen, with a resume
    point after every step; the run directory `<run_root>/<run id>` is exported from it when the run ends.
    `run_root=None` records nothing. `continuation` continues a stored run instead (see `api.resume`);
    `resume` continues from a resume point alone (`run.checkpoint`), recording nothing new about the past.
    A continued run ends as it would have without the stop, the calls it had finished answered by the cache (same
    task, method, options, seed and cache). `on_checkpoint(step, checkpoint)` receives each resume point;
    `on_start(run_id, config)` is told the run's id and config before the first step (MLflow names its run so).
    `calibration` ("none", "contextual", "batch"): every candidate's label prior is divided out of its scores;
    `prices` ('task', 'meta' → `Price`): the calls in money (spend `usd`), and `budget.usd` can stop the run."""
    started = time.monotonic()
    session = _session(optimizer, task, task_model, meta_model, budget, cache, progress, prices)
    evaluator = session.evaluator(task, task_model, mode=scoring)
    meta = session.model(meta_model or task_model, "meta")
    config = continuation.config if continuation is not None else _config(
        task, optimizer, evaluator.mode, task_model, meta_model, budget, seed, scoring, calibration,
        final_top_k, provenance or Provenance(), session.prices)
    faults = BackendFaults(task_model, meta_model,
                           carried=continuation.faults_before if continuation is not None else None)
    with _recorder(task, config, run_root, store, continuation) as rec:
        if on_start is not None and rec.run_id is not None:
            on_start(rec.run_id, config)
        ctx = _context(task, evaluator, meta, config, rec, session)
        point = continuation.checkpoint if continuation is not None else resume
        _announce(ctx, optimizer, budget, calibration, fresh=point is None and continuation is None)
        state = begin(ctx, optimizer, session.meter, rec, point, fresh=continuation is None)
        seed_cand = state.pool[0]
        outcome = Outcome()
        try:
            with session:
                state = search(ctx, state, optimizer, session, rec, faults, outcome, callbacks, on_checkpoint,
                               started, fresh=point is None)
                result = finalize(ctx, state, optimizer, seed_cand, session.scope(), rec, final_top_k,
                                  skip_calls=outcome.stopped == "interrupted")
            out = OptimizationResult(
                method=optimizer.name, task=task.name, seed_prompt=seed_cand.prompt, stopped_reason=outcome.stopped,
                steps=state.step, n_candidates=len(state.pool), spend=session.meter.spend.to_dict(),
                wall_time_s=round(time.monotonic() - started, 3),
                run_dir=str(rec.path) if rec.path is not None else None,
                options=_options(optimizer), backend=faults.counts(), **result)
            outcome.finish("interrupted" if outcome.stopped == "interrupted" else "finished", out.to_dict())
        except BackendError as exc:  # the server is gone (or refuses): keep what is finished, say how to go on
            outcome.fail(exc, {"method": optimizer.name, "task": task.name, "stopped_reason": "backend_error",
                               "error": str(exc), "steps": state.step, "n_candidates": len(state.pool),
                               "spend": session.meter.spend.to_dict(),
                               "wall_time_s": round(time.monotonic() - started, 3), "backend": faults.counts()})
        finally:
            rec.finish(outcome.status, outcome.result)
    _raise_if_stopped(outcome, rec.run_id, state.step, faults)
    return out


def _session(optimizer: Optimizer, task: Task, task_model: Model, meta_model: Model | None, budget: Budget | None,
             cache: CallCache | None, progress: bool, prices: Mapping[str, Price] | None) -> Session:
    """The run's session: one meter on the budget, the call cache, the progress bar, the models' prices by role."""
    priced = role_prices(prices, money_budget=budget is not None and budget.usd is not None,
                         meta_is_task_model=meta_model is None or meta_model is task_model)
    return Session(budget, cache=cache, progress=f"{optimizer.name} on {task.name}" if progress else None,
                   prices=priced)


def _announce(ctx: OptimizationContext, optimizer: Optimizer, budget: Budget | None, calibration: str, *,
              fresh: bool) -> None:
    """Before any call of a new run: what its dev and test splits are too small to tell apart, and what a step
    costs against the budget (`run.estimate`; a warning when it pays for none). A resumed run was told so."""
    if not fresh:
        return
    for warning in split_warnings({split: len(ctx.task.split(split)) for split in ("dev", "test")}):
        log.warning("%s", warning)
    found = estimate(optimizer, ctx.task, budget, seed_prompt=ctx.seed_prompt, calibration=calibration)
    warn_if_short(found)
    ctx.record_event({"event": "estimate", **found.to_dict()})


def _raise_if_stopped(outcome: Outcome, run_id: str | None, step: int, faults: BackendFaults) -> None:
    """A failed backend stops the run with the message saying how to continue it; Ctrl-C goes on up."""
    if outcome.failure is not None:
        if run_id is None:
            raise outcome.failure
        where = f"during step {step + 1}" if outcome.searching else "while scoring the finalists"
        raise BackendError(stopped_message(run_id, where, step, outcome.failure,
                                           faults.counts())) from outcome.failure
    if outcome.stopped == "interrupted":
        raise KeyboardInterrupt


def _context(task: Task, evaluator: Any, meta: Any, config: RunConfig, rec: Recorder,
             session: Session) -> OptimizationContext:
    """The method's context, every candidate, event and per-example score going to `rec` as it happens."""
    meter = session.meter
    return OptimizationContext(
        task, evaluator, meta, random.Random(config.seed), Prompt(task.instruction, output_format=task.output_format),
        on_candidate=lambda cand: rec.candidate({**cand.to_dict(), "calls_so_far": meter.spend.calls}),
        on_event=lambda event: rec.event({"method": config.method, **event, "calls_so_far": meter.spend.calls}),
        on_evaluation=lambda cand, key, result: rec.evaluations(cand.id, key, result),
        calibration=config.calibration)


@contextmanager
def _recorder(task: Task, config: RunConfig, run_root: str | Path | None, store: RunStore | str | Path | None,
              continuation: Continuation | None) -> Iterator[Recorder]:
    """The run's recorder: the continued run's, a new run in the store (closed after if opened here), or none."""
    if continuation is not None:
        try:
            yield continuation.recorder
        finally:
            continuation.recorder.release()
        return
    if run_root is None:
        yield NullRecorder()
        return
    owned = open_store(store, run_root)
    try:
        rec = RunRecorder.create(owned, new_run_id(config.method, task.name), task=task, method=config.method,
                                 seed=config.seed, config=config.to_dict(), export_root=Path(run_root))
        try:
            yield rec
        finally:
            rec.release()
    finally:
        if not isinstance(store, RunStore):
            owned.close()


def open_store(store: RunStore | str | Path | None, run_root: str | Path) -> RunStore:
    """The store a run records into: the one given (an open store, a URL or a path) or the default one."""
    if isinstance(store, RunStore):
        return store
    return RunStore(store) if store is not None else RunStore.default(Path(run_root))


def _options(optimizer: Optimizer) -> dict[str, Any]:
    return {k: getattr(optimizer, k) for k in optimizer.knobs()}


def _config(task: Task, optimizer: Optimizer, mode: str, task_model: Model, meta_model: Model | None,
            budget: Budget | None, seed: int, scoring: str, calibration: str, final_top_k: int,
            provenance: Provenance, prices: Mapping[str, Price]) -> RunConfig:
    """What was asked, with versions; with the task's own fields, so that a resume can rebuild the task from the
    store's examples alone, and the provenance (model specs, cache file, executor) for rebuilding the rest."""
    meta = meta_model or task_model
    return RunConfig(method=optimizer.name, options=_options(optimizer),
                     task=TaskFields.of(task), task_model=task_model.id, meta_model=meta.id,
                     budget=budget or Budget(), seed=seed, scoring=scoring, scoring_mode=mode,
                     calibration=check_calibration(calibration),
                     final_top_k=final_top_k, model_spec=provenance.model, meta_model_spec=provenance.meta_model,
                     meta_is_task_model=meta is task_model, cache=provenance.cache, executor=provenance.executor,
                     prices=dict(prices))


__all__ = ["Continuation", "OptimizationResult", "Provenance", "StepRecord", "open_store", "run_optimization"]
