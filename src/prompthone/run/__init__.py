"""What a run is: a `Session` of metered models, the step loop, finalization, fault accounting, the recorder that
writes to the store, one typed `RunConfig`, and resume. `run_optimization` wires them together."""

from __future__ import annotations

from prompthone.run.config import RunConfig, TaskFields
from prompthone.run.driver import Continuation, Provenance, run_optimization
from prompthone.run.results import OptimizationResult, StepRecord
from prompthone.run.session import Session

__all__ = ["Continuation", "OptimizationResult", "Provenance", "RunConfig", "Session", "StepRecord", "TaskFields",
           "run_optimization"]
