"""What one step of a method costs at its knobs on a task, before any model call (the pre-run estimate).

Each method states its own arithmetic (`Optimizer.step_cost`), because only it knows what a round, a trial or an
iteration asks of the models; the run compares the result with the budget (`run.estimate`). The counts are the
calls a step *makes* (the budget counts cache hits too), assuming every candidate is new: an upper estimate when
candidates repeat, exact for the bandits' pulls.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskShape:
    """What a step's cost depends on besides the knobs.

    `example_calls` is the task-model calls one example costs under the seed prompt (1; 2 when it reasons first:
    the reasoning, then the answer); `calibration_calls` the calls that estimate a new candidate's label prior
    (0 without calibration)."""

    train: int
    dev: int
    example_calls: int = 1
    calibration_calls: int = 0

    def evaluations(self, candidates: int, examples: int) -> int:
        """Task calls to score `candidates` new prompts on `examples` examples each."""
        return candidates * (examples * self.example_calls + self.calibration_calls)


@dataclass(frozen=True)
class StepCost:
    """A method's steps in task-model and meta-model calls.

    `first` is the cost of the method's setup and its first step together (what a budget must cover for the run to
    finish one step); `per_step` that of a later step; `steps` how many the method plans (None: it goes on until the
    budget ends). `knobs` are the knobs that size a step, named when the budget is too small."""

    unit: str
    first_task: int
    first_meta: int
    per_step_task: int
    per_step_meta: int
    steps: int | None
    knobs: tuple[str, ...]

    @property
    def first(self) -> int:
        return self.first_task + self.first_meta

    @property
    def per_step(self) -> int:
        return self.per_step_task + self.per_step_meta

    def total(self) -> int | None:
        """Calls of the whole planned search (None when it has no planned end)."""
        if self.steps is None:
            return None
        return self.first + max(0, self.steps - 1) * self.per_step

    def steps_within(self, calls: int, *, task_only: bool = False) -> int:
        """How many whole steps `calls` pay for."""
        first, later = ((self.first_task, self.per_step_task) if task_only else (self.first, self.per_step))
        if calls < first:
            return 0
        done = 1 + ((calls - first) // later if later > 0 else 0)
        return done if self.steps is None else min(done, self.steps)
