"""The step loop every method runs in: start (or restore), step, record the step and its resume point, call back.

It stops when the method says it is done, when the budget is spent (`BudgetExhausted`) or on Ctrl-C (finalized with
what is scored so far); a failing backend (`BackendError`) goes up to the driver, which keeps what is finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.errors import BackendError, BudgetExhausted
from prompthone.evaluation.budget import BudgetMeter
from prompthone.optimizers.base import OptimizationContext, OptimizationState, Optimizer
from prompthone.run import checkpoint
from prompthone.run.faults import BackendFaults
from prompthone.run.recorder import Recorder
from prompthone.run.results import StepRecord
from prompthone.run.session import Session

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How the run ended: why the search stopped, the status and result to record, the backend failure if any."""

    stopped: str = "finished"
    status: str = "failed"
    result: dict[str, Any] | None = None
    failure: BackendError | None = None
    searching: bool = True

    def finish(self, status: str, result: dict[str, Any]) -> None:
        self.status, self.result = status, result

    def fail(self, error: BackendError, result: dict[str, Any]) -> None:
        """A backend failed for good: no scores (the run is not over; `resume` continues it)."""
        self.failure, self.result = error, result


def begin(ctx: OptimizationContext, optimizer: Optimizer, meter: BudgetMeter, rec: Recorder,
          point: dict[str, Any] | None, *, fresh: bool) -> OptimizationState:
    """The state the search starts from: a new one holding the seed prompt, or the one saved in `point`.

    A continued run's records go back to where it starts again (the one place a stored run is rewound): to its
    resume point, with the restored candidates recorded again, or to nothing (`fresh=False` without a point).
    """
    if point is None:
        if not fresh:
            rec.rewind(0, 0)
        state = OptimizationState()
        seed = ctx.new_candidate(state, ctx.seed_prompt, parent=None, origin="seed")
        assert seed is not None
        state.frontier = [seed.id]
        return state
    state = checkpoint.restore(point, ctx, meter, optimizer)
    rec.rewind(state.step, ctx.next_id)
    for cand in state.pool.values():
        ctx.record_candidate(cand)
    return state


def search(ctx: OptimizationContext, state: OptimizationState, optimizer: Optimizer, session: Session,
           rec: Recorder, faults: BackendFaults, outcome: Outcome,
           callbacks: Sequence[Callable[[StepRecord], None]],
           on_checkpoint: Callable[[int, dict[str, Any]], None] | None, started: float, *,
           fresh: bool) -> OptimizationState:
    """Step `optimizer` until it is done or stopped, recording every step with its resume point; the last state."""
    ui = session.ui
    ui.phase("search")
    try:
        if fresh:
            optimizer.start(ctx, state)
        while not state.done:
            state = optimizer.step(ctx, state)
            record = step_record(optimizer, state, session.meter, started, faults)
            ui.update_best(record.best_score)
            point = None
            if rec.records or on_checkpoint is not None:
                point = checkpoint.capture(state, ctx, session.meter, optimizer)
            rec.step(record.__dict__, point)
            if on_checkpoint is not None and point is not None:
                on_checkpoint(state.step, point)
            for callback in callbacks:
                callback(record)
    except BudgetExhausted as exc:
        outcome.stopped = "budget"
        log.info("stopping: %s", exc)
    except KeyboardInterrupt:
        outcome.stopped = "interrupted"
        log.warning("interrupted: finalizing with the candidates scored so far")
    outcome.searching = False
    return state


def step_record(optimizer: Optimizer, state: OptimizationState, meter: BudgetMeter, started: float,
                faults: BackendFaults) -> StepRecord:
    top = optimizer.top(state, 1)
    return StepRecord(step=state.step, best_id=top[0].id if top else None,
                      best_score=top[0].scores[optimizer.rank_key] if top else None,
                      spend=meter.spend.to_dict(), elapsed_s=round(time.monotonic() - started, 3),
                      frontier=list(state.frontier), backend=faults.counts())
