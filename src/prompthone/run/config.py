"""What a run was asked to do, as one typed value: written into the store by the run, read back by everyone else.

`resume` rebuilds a stopped run from it (with the examples the store holds), MLflow logs it as params, and the
report and the dashboard show it. Its dictionary form (`to_dict`) is the run's `config` row, unchanged since the
store's first schema, so runs recorded by earlier versions read back with `from_dict`; keys a record lacks (a
hand-edited or partial run directory) take the defaults below, and keys it has that this version does not know
are kept in `extra` and written back as they were.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from prompthone._version import __version__
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.prices import Price
from prompthone.tasks.example import Task

#: the config's keys this module reads and writes (everything else of a record goes to `RunConfig.extra`)
_KNOWN = ("method", "options", "task", "task_model", "meta_model", "budget", "prices", "seed", "scoring",
          "scoring_mode", "calibration", "final_top_k", "provenance", "versions")


@dataclass(frozen=True)
class TaskFields:
    """The task's own fields and split sizes: with the store's examples, enough to rebuild the task."""

    name: str = "unknown task"
    metric: str = "exact_match"
    labels: tuple[str, ...] | None = None
    instruction: str = ""
    output_format: str = ""
    description: str = ""
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, task: Task) -> TaskFields:
        return cls(task.name, task.metric, task.labels, task.instruction, task.output_format, task.description,
                   {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric,
                "labels": list(self.labels) if self.labels is not None else None,
                "instruction": self.instruction, "output_format": self.output_format,
                "description": self.description, "sizes": dict(self.sizes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFields:
        labels = data.get("labels")
        return cls(name=str(data.get("name") or cls.name), metric=str(data.get("metric") or cls.metric),
                   labels=tuple(labels) if labels is not None else None,
                   instruction=str(data.get("instruction") or ""), output_format=str(data.get("output_format") or ""),
                   description=str(data.get("description") or ""), sizes=dict(data.get("sizes") or {}))


@dataclass(frozen=True)
class RunConfig:
    """A run's settings: method and options, task, models (ids, and specs to rebuild them), budget, seed, scoring.

    `calibration` is how every candidate's label prior is divided out (`prompts.calibration`; "none" in runs
    recorded before it existed). `task_model`/`meta_model` are the backends' ids (what cache keys and a resume
    check against); `model_spec`/`meta_model_spec` the specs to build them again (None when given as an object,
    or when the spec holds credentials, which are never written down). `meta_is_task_model` says the search
    proposed with the task model itself. `executor` is the Ray executor's record (None: local). `prices` are the
    task and meta models' prices by role (`evaluation.prices`; none: the run shows no money).
    """

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    task: TaskFields = field(default_factory=TaskFields)
    task_model: str | None = None
    meta_model: str | None = None
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    scoring: str = "auto"
    scoring_mode: str | None = None
    calibration: str = "none"
    final_top_k: int = 3
    model_spec: str | None = None
    meta_model_spec: str | None = None
    meta_is_task_model: bool = True
    cache: str | None = None
    executor: dict[str, Any] | None = None
    prices: dict[str, Price] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=lambda: {"prompthone": __version__,
                                                              "python": platform.python_version()})
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The store's `config` row (the same keys and nesting since the first schema)."""
        b = self.budget
        return {"method": self.method, "options": dict(self.options), "task": self.task.to_dict(),
                "task_model": self.task_model, "meta_model": self.meta_model,
                "budget": {"calls": b.calls, "tokens": b.tokens, "task_calls": b.task_calls,
                           **({"usd": b.usd} if b.usd is not None else {})},
                **({"prices": {role: p.to_dict() for role, p in self.prices.items()}} if self.prices else {}),
                "seed": self.seed, "scoring": self.scoring, "scoring_mode": self.scoring_mode,
                "calibration": self.calibration, "final_top_k": self.final_top_k,
                "provenance": {"model": self.model_spec, "meta_model": self.meta_model_spec,
                               "meta_is_task_model": self.meta_is_task_model, "cache": self.cache,
                               "executor": self.executor},
                "versions": dict(self.versions), **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """A stored config, of this version or an earlier one; missing keys take their defaults."""
        budget = data.get("budget") or {}
        provenance = data.get("provenance") or {}
        executor = provenance.get("executor")
        return cls(
            method=str(data.get("method") or ""), options=dict(data.get("options") or {}),
            task=TaskFields.from_dict(data.get("task") or {}),
            task_model=_text(data.get("task_model")), meta_model=_text(data.get("meta_model")),
            budget=Budget(calls=budget.get("calls"), tokens=budget.get("tokens"), task_calls=budget.get("task_calls"),
                          usd=budget.get("usd")),
            prices={role: Price.from_dict(p) for role, p in (data.get("prices") or {}).items()},
            seed=int(data.get("seed") or 0), scoring=str(data.get("scoring") or "auto"),
            scoring_mode=_text(data.get("scoring_mode")),
            calibration=str(data.get("calibration") or "none"), final_top_k=int(data.get("final_top_k", 3)),
            model_spec=_text(provenance.get("model")), meta_model_spec=_text(provenance.get("meta_model")),
            meta_is_task_model=bool(provenance.get("meta_is_task_model", True)),
            cache=_text(provenance.get("cache")), executor=executor if isinstance(executor, dict) else None,
            versions=dict(data.get("versions") or {}), extra={k: v for k, v in data.items() if k not in _KNOWN})

    def models(self) -> list[str]:
        """The task model's id, then the meta model's when it differs (what a summary names)."""
        return [m for m in dict.fromkeys([self.task_model, self.meta_model]) if m]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
