"""Scoring the hand grid on dev: every variant on the whole split, or successive halving over growing slices.

All calls go through one `MeteredModel` on one `BudgetMeter`, so the grid's spend (calls made, cache hits,
tokens) is counted exactly: that count is the budget the optimizers get afterwards. Under a calibration each
variant's label prior is estimated (`Evaluator.calibrate`) the first time it is scored, through the same meter:
those calls count in the grid's spend and in the variant's own calls, once per variant, whatever rung it reaches.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import Evaluator, ExampleResult, ScoringMode
from prompthone.grid_study.grid import HandVariant
from prompthone.grid_study.halving import Rung, calls_saved, rung_sizes, successive_halving
from prompthone.models.base import Model
from prompthone.progress import RunProgress
from prompthone.prompts.calibration import Calibration, calibration_inputs, check_calibration
from prompthone.prompts.prompt import Prompt
from prompthone.run.session import Session
from prompthone.tasks.example import Example, Task
from prompthone.tasks.metrics import get_metric


@dataclass(frozen=True)
class HandRow:
    """One row of the study's table: a variant, its dev score on `n` examples, its calls, where it was pruned.

    `rank` is the place in the study's order (1 = best): variants scored on the whole dev split by score, then
    those pruned at later rungs before those pruned at earlier ones. `pruned_at` is None for a survivor.
    `rung_scores` is the score at each rung reached (one entry without halving). `calls` includes the
    `calibration_calls` that estimated the variant's label prior `calibration` (None: scored uncalibrated).
    """

    rank: int
    index: int
    opener: str
    task_line: str
    closer: str
    cot: bool
    system: str | None
    dev_score: float
    n: int
    calls: int
    pruned_at: int | None
    rung_scores: tuple[float, ...] = ()
    calibration: Calibration | None = None
    calibration_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GridOutcome:
    """The scored grid: rows best first, the rungs, what the grid spent and what halving saved.

    `calibration` is the method every variant was scored with ("none" also when the grid was not label-scored,
    the only scoring a calibration applies to).
    """

    rows: list[HandRow]
    rungs: list[Rung]
    spend: dict[str, object]
    n_dev: int
    full_grid_calls: int
    calls_saved: int
    scoring_mode: str
    wall_time_s: float
    halving: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)
    calibration: str = "none"

    @property
    def calls(self) -> int:
        """Calls the grid made (cache hits included: the same count a warm or a cold cache gives)."""
        return int(self.spend["calls"])  # type: ignore[call-overload]

    @property
    def full_dev_rows(self) -> list[HandRow]:
        return [r for r in self.rows if r.n == self.n_dev]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "rungs": [asdict(r) for r in self.rungs],
                "spend": self.spend, "n_dev": self.n_dev, "full_grid_calls": self.full_grid_calls,
                "calls_saved": self.calls_saved, "scoring_mode": self.scoring_mode,
                "wall_time_s": self.wall_time_s, "halving": self.halving, "notes": self.notes,
                "calibration": self.calibration}


class SliceScorer:
    """Scores prompts on growing prefixes of `examples`, evaluating only examples not seen before.

    The score on a prefix is the task metric's aggregate over the per-example predictions (for F1 metrics
    that is not a mean of per-example scores), so a prefix score equals a fresh evaluation of that prefix.
    Under `calibration` ("contextual", "batch") a prompt's label prior is estimated when it is first scored and
    kept with it (`prompts[arm]`); its calls are in `calls[arm]` and, apart, in `calibration_calls[arm]`.
    """

    def __init__(self, evaluator: Evaluator, prompts: Sequence[Prompt], examples: Sequence[Example],
                 meter: BudgetMeter, ui: RunProgress | None = None, *, calibration: str = "none") -> None:
        self.evaluator = evaluator
        self.prompts = list(prompts)
        self.examples = list(examples)
        self.meter = meter
        self.ui = ui
        self.calibration = check_calibration(calibration)
        self.metric = get_metric(evaluator.task.metric)
        self.results: list[list[ExampleResult]] = [[] for _ in self.prompts]
        self.calls = [0] * len(self.prompts)
        self.calibration_calls = [0] * len(self.prompts)

    def __call__(self, arm: int, n: int) -> float:
        done = self.results[arm]
        if n > len(done):
            if self.ui is not None:
                self.ui.phase(f"variant {arm + 1}/{len(self.prompts)} on {n} dev examples")
            before = self.meter.spend.calls
            if not done:
                self._calibrate(arm)
            result = self.evaluator.evaluate(self.prompts[arm], self.examples[len(done):n])
            self.calls[arm] += self.meter.spend.calls - before
            done.extend(result.examples)
        seen = done[:n]
        return self.metric.aggregate([r.prediction for r in seen], [r.target for r in seen], self.evaluator.task.labels)

    def _calibrate(self, arm: int) -> None:
        """Estimate the arm's label prior under `calibration` (a no-op for none or without label scoring)."""
        before = self.meter.spend.calls
        self.prompts[arm] = self.evaluator.calibrate(self.prompts[arm], self.calibration)
        self.calibration_calls[arm] = self.meter.spend.calls - before

    @property
    def example_calls(self) -> list[int]:
        """Each arm's calls on dev examples (its calls less its calibration's): what grows with the slice."""
        return [c - k for c, k in zip(self.calls, self.calibration_calls, strict=True)]


def _calibration_inputs(task: Task, calibration: str) -> int:
    """How many inputs `Evaluator.calibrate` scores per prompt under `calibration` (for the progress bar's length:
    0 for a task without labels)."""
    return len(calibration_inputs(calibration, task.train)) if task.labels else 0


def evaluate_grid(task: Task, variants: Sequence[HandVariant], model: Model, *, cot_tokens: int,
                  cache: CallCache | None = None, scoring: ScoringMode = "auto", halving: bool = False,
                  eta: int = 3, min_slice: int = 10, rng: random.Random | None = None,
                  calibration: str = "none", progress: bool = True) -> GridOutcome:
    """Score every variant on dev (or run successive halving over dev slices) and order them best first.

    `calibration` ("none", "contextual", "batch"; label scoring only) divides each variant's own label prior out
    of its scores; the prior is estimated once per variant and its calls are counted in the grid's spend.
    """
    started = time.monotonic()
    dev = list(task.dev)
    if not dev:
        raise ConfigError(f"task {task.name!r} has no dev examples to score the grid on")
    per_example = sum(2 if v.cot else 1 for v in variants)  # a CoT prompt: reasoning + answer per example
    sizes = rung_sizes(len(variants), len(dev), eta=eta, min_slice=min_slice) if halving else [len(dev)]
    notes = []
    if halving and len(sizes) == 1:
        notes.append(f"successive halving asked for, but {len(dev)} dev examples leave room for one rung only "
                     f"(min_slice {min_slice}, eta {eta}): every variant was scored on the whole dev split")
    total = per_example * (len(dev) + _calibration_inputs(task, calibration))
    session = Session(cache=cache, progress=f"study grid on {task.name}" if progress else None,
                      total=total if len(sizes) == 1 else None)
    meter = session.meter
    with session:
        evaluator = session.evaluator(task, model, mode=scoring)
        scorer = SliceScorer(evaluator, [v.prompt(task, cot_tokens) for v in variants], dev, meter, session.ui,
                             calibration=calibration)
        outcome = successive_halving(len(variants), sizes, scorer, eta=eta, rng=rng)
    if calibration != "none" and evaluator.mode != "labels":
        notes.append(f"{calibration} calibration asked for, but the grid was scored by generating answers: "
                     "calibration applies to label scoring only, so no variant was calibrated")
    rows = [HandRow(rank=place + 1, index=v.index, opener=v.opener, task_line=v.task_line, closer=v.closer,
                    cot=v.cot, system=v.system, dev_score=outcome.scores[i], n=outcome.sizes[i],
                    calls=scorer.calls[i], pruned_at=outcome.pruned_at[i], rung_scores=outcome.history[i],
                    calibration=scorer.prompts[i].calibration, calibration_calls=scorer.calibration_calls[i])
            for place, i in enumerate(outcome.order) for v in [variants[i]]]
    # a full grid pays each variant's calibration once too: only the calls on dev examples scale with the slice
    saved = calls_saved(scorer.example_calls, outcome.sizes, len(dev))
    spend = meter.spend.to_dict()
    return GridOutcome(rows=rows, rungs=list(outcome.rungs), spend=spend, n_dev=len(dev),
                       full_grid_calls=meter.spend.calls + saved, calls_saved=saved, scoring_mode=evaluator.mode,
                       wall_time_s=round(time.monotonic() - started, 3),
                       halving={"eta": eta, "min_slice": min_slice, "rungs": len(sizes)} if halving else None,
                       notes=notes, calibration=calibration if evaluator.mode == "labels" else "none")
