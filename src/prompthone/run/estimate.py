"""The pre-run estimate: what a method's setup and each step cost at its knobs on this task, against the budget.

Measured before this existed: APO at its paper defaults with a budget of 300 calls finished no round and returned
the seed prompt, and nothing said why. Now the run says, before any model call, what one step needs and how many
the budget pays for, and warns when it cannot pay for the first (`optimize --dry-run` prints it and stops).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from prompthone.evaluation.budget import Budget
from prompthone.optimizers.base import Optimizer
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.prompts.calibration import calibration_inputs
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Estimate:
    """A method's step cost (None: it sizes itself to the budget) and the call limit it is compared with."""

    method: str
    cost: StepCost | None
    limit: int | None
    task_only: bool = False

    @property
    def steps_paid(self) -> int | None:
        """Whole steps the budget pays for (None: no call limit, or no estimate)."""
        if self.cost is None or self.limit is None:
            return None
        return self.cost.steps_within(self.limit, task_only=self.task_only)

    @property
    def short(self) -> bool:
        """The budget ends inside the first step: the run would return the seed prompt."""
        return self.steps_paid == 0

    def summary(self) -> str:
        """One line: what the setup and a step cost, and how many steps are planned."""
        c = self.cost
        if c is None:
            return f"{self.method}: sizes its search to the budget (no fixed step to estimate)"
        text = (f"{self.method}: ~{c.first:,} calls ({c.first_task:,} task, {c.first_meta:,} meta) to set up and "
                f"finish {c.unit} 1")
        if c.steps is None or c.steps > 1:
            text += f", then ~{c.per_step:,} per {c.unit} ({c.per_step_task:,} task)"
        total = c.total()
        if total is not None and c.steps is not None:
            text += f"; {_count(c.steps, c.unit)} planned, ~{total:,} calls in all"
        return text

    def verdict(self) -> str | None:
        """The budget against the steps: how many it pays for, or what to change when it pays for none."""
        c, paid = self.cost, self.steps_paid
        if c is None or paid is None:
            return None
        kind = "task-model calls" if self.task_only else "calls"
        if paid == 0:
            first = c.first_task if self.task_only else c.first
            return (f"a budget of {self.limit:,} {kind} ends inside {c.unit} 1 (it needs ~{first:,}): no {c.unit} "
                    f"would finish and the run keeps only what it scored before the stop (often just the seed "
                    f"prompt); lower {'/'.join(c.knobs)} or raise the budget")
        if c.steps is None:
            return f"a budget of {self.limit:,} {kind} pays for about {_count(paid, c.unit)}"
        if paid < c.steps:
            return f"a budget of {self.limit:,} {kind} pays for about {paid} of the {_count(c.steps, c.unit)}"
        return f"a budget of {self.limit:,} {kind} covers the planned search"

    def lines(self) -> list[str]:
        return [self.summary(), *([v] if (v := self.verdict()) else [])]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "cost": asdict(self.cost) if self.cost else None, "limit": self.limit,
                "task_only": self.task_only, "steps_paid": self.steps_paid}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def task_shape(task: Task, seed_prompt: Prompt, calibration: str = "none") -> TaskShape:
    """The task's split sizes and what one example and one new candidate cost under `seed_prompt`."""
    calibrating = calibration != "none" and bool(task.labels)
    return TaskShape(len(task.train), len(task.dev), example_calls=2 if seed_prompt.reasons else 1,
                     calibration_calls=len(calibration_inputs(calibration, task.train)) if calibrating else 0)


def estimate(optimizer: Optimizer, task: Task, budget: Budget | None, *, seed_prompt: Prompt | None = None,
             calibration: str = "none") -> Estimate:
    """`optimizer`'s step cost on `task`, against the budget's call limit (task calls when only those are capped)."""
    prompt = seed_prompt or Prompt(task.instruction, output_format=task.output_format)
    cost = optimizer.step_cost(task_shape(task, prompt, calibration))
    budget = budget or Budget()
    task_only = budget.calls is None and budget.task_calls is not None
    return Estimate(optimizer.name, cost, budget.task_calls if task_only else budget.calls, task_only)


def warn_if_short(found: Estimate) -> None:
    """Log the estimate; a warning when the budget cannot pay for the first step."""
    if found.short:
        log.warning("%s", found.verdict())
    else:
        log.info("%s", "; ".join(found.lines()))
