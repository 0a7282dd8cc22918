"""Resume points: everything a run needs to continue exactly where a finished step left it.

After every step the driver captures the search state (the candidate pool, frontier, the method's own state in
`state.extra`), the run's random generator, the next candidate id and the budget meter's spend. Restoring that
into a fresh driver and continuing gives the same requests in the same order as the run that was never stopped,
so the call cache answers every call the killed process had finished, and the result is the same.

Why pickle: a method's state holds objects that have no JSON form but must come back exactly, an Optuna study
with its seeded sampler (MIPRO) or a candidate referenced from two places (GREATER's current candidate is also
in the pool). Objects that must not travel (a loaded model) are taken out by the method's `pack_extra` and put
back by `unpack_extra`. A checkpoint is data prompthone wrote itself into the user's own store; it is versioned
and refused when its format is unknown. Like any pickle, it must not come from a store you do not trust.
"""

from __future__ import annotations

import base64
import copy
import pickle
import zlib
from typing import TYPE_CHECKING, Any

from prompthone.errors import StoreError

if TYPE_CHECKING:
    from prompthone.evaluation.budget import BudgetMeter
    from prompthone.optimizers.base import OptimizationContext, OptimizationState, Optimizer

FORMAT = "prompthone-checkpoint/1"


def capture(state: OptimizationState, ctx: OptimizationContext, meter: BudgetMeter,
            optimizer: Optimizer) -> dict[str, Any]:
    """A JSON-safe checkpoint of a run between two steps (the payload is a compressed, base64 pickle)."""
    packed = copy.copy(state)
    packed.extra = optimizer.pack_extra(dict(state.extra))
    payload = {"state": packed, "rng": ctx.rng.getstate(), "next_id": ctx.next_id, "spend": meter.spend,
               "marks_full_dev": True}
    blob = zlib.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), level=6)
    return {"format": FORMAT, "step": state.step, "method": optimizer.name,
            "data": base64.b64encode(blob).decode("ascii")}


def restore(checkpoint: dict[str, Any], ctx: OptimizationContext, meter: BudgetMeter,
            optimizer: Optimizer) -> OptimizationState:
    """The state saved in `checkpoint`; sets the context's rng and next id and the meter's spend in place."""
    if checkpoint.get("format") != FORMAT:
        raise StoreError(f"checkpoint format {checkpoint.get('format')!r} is not one this prompthone reads "
                         f"({FORMAT}); was the run made by a newer version?")
    if checkpoint.get("method") != optimizer.name:
        raise StoreError(f"checkpoint is of method {checkpoint.get('method')!r}, not {optimizer.name!r}")
    try:
        payload = pickle.loads(zlib.decompress(base64.b64decode(checkpoint["data"])))
    except (KeyError, ValueError, zlib.error, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise StoreError(f"checkpoint of step {checkpoint.get('step')} is damaged: {exc}") from None
    state: OptimizationState = payload["state"]
    if not payload.get("marks_full_dev"):
        _mark_full_dev(state, optimizer, len(ctx.task.dev))
    state.extra = optimizer.unpack_extra(state.extra, ctx)
    ctx.rng.setstate(payload["rng"])
    ctx.next_id = payload["next_id"]
    meter.spend = payload["spend"]
    return state


def _mark_full_dev(state: OptimizationState, optimizer: Optimizer, n_dev: int) -> None:
    """A resume point written before candidates said which score covers the whole dev split: mark the scores the
    method always takes on the whole dev split (`Optimizer.full_dev_keys`), so finalization reuses them as then."""
    for cand in state.pool.values():
        for key in optimizer.full_dev_keys:
            if key in cand.scores and cand.n_scored.get(key) == n_dev:
                cand.full_dev = key
