"""One accounting scope for model calls: a budget meter, a call cache and a progress display, shared by every
model it wraps for a role. The one place that builds metered models and evaluators.

Everything that calls models (a run's search and finalization, `evaluate`, the study grid, the PAS pipeline and its
judge) goes through a `Session`, so that the budget, the cache and the progress bar see every call the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from prompthone.evaluation.budget import Budget, BudgetMeter
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import ANSWER_TOKENS, Evaluator, ScoringMode
from prompthone.evaluation.metered import MeteredModel
from prompthone.evaluation.prices import Price
from prompthone.models.base import Model
from prompthone.progress import RunProgress
from prompthone.tasks.example import Task

#: roles that call another role's model, and so pay its price (finalization scores on the task model)
_PRICED_AS = {"final": "task"}


class Session:
    """Models for roles ('task', 'meta', 'judge', 'final') behind one meter, one cache and one progress display.

    `progress` is a label to show a progress bar under (None: none); `total` its length when it is not the
    budget's call limit. Use the session as a context manager to show the bar while it works.
    """

    def __init__(self, budget: Budget | None = None, *, cache: CallCache | None = None, progress: str | None = None,
                 total: int | None = None, ui: RunProgress | None = None,
                 prices: Mapping[str, Price] | None = None) -> None:
        self.meter = BudgetMeter(budget)
        self.cache = cache
        self.prices = dict(prices or {})  # role → price of its model (a role without one costs no money here)
        self.ui = ui if ui is not None else RunProgress(self.meter, enabled=progress is not None,
                                                        label=progress or "", total=total)

    def model(self, model: Model | MeteredModel, role: str = "task", *,
              cache: CallCache | None = None) -> MeteredModel:
        """`model` seen through this session's meter and cache (or `cache`, for a model that keeps its own) under
        `role`; a metered model is kept as it is."""
        if isinstance(model, MeteredModel):
            return model
        return MeteredModel(model, meter=self.meter, cache=cache if cache is not None else self.cache, role=role,
                            on_result=self.ui.tick, price=self.prices.get(_PRICED_AS.get(role, role)))

    def evaluator(self, task: Task, model: Model | MeteredModel, *, role: str = "task", mode: ScoringMode = "auto",
                  max_tokens: int = ANSWER_TOKENS) -> Evaluator:
        """An evaluator of `task` on `model` in this session, answers generated up to `max_tokens`."""
        return Evaluator(task, self.model(model, role), mode=mode, max_tokens=max_tokens)

    def scope(self, budget: Budget | None = None) -> Session:
        """A session with its own meter (`budget`) sharing this one's cache and progress display: calls counted
        apart, such as a run's finalization beside its search."""
        return Session(budget, cache=self.cache, ui=self.ui, prices=self.prices)

    def __enter__(self) -> Session:
        self.ui.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.ui.__exit__(exc_type, exc, tb)
