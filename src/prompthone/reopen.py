"""Rebuilding a stopped run from its store: task, method, models, budget, cache and the last resume point.

The store holds everything a run needs to continue, so a resume never re-reads the task file (which may have
changed since) and never asks the user to repeat options: the examples with their splits are in the store,
the method's options, seed, budget and scoring in the run's config, the model specs and the cache file in its
provenance. What cannot be stored is checked instead: a model given anew must be the same model (same id),
and a run that is still alive is not resumed twice.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, StoreError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.cache import CallCache
from prompthone.models.base import Model
from prompthone.optimizers import get_method
from prompthone.optimizers.base import Optimizer
from prompthone.optimizers.driver import open_store
from prompthone.optimizers.recorder import RunRecorder
from prompthone.store.db import RunStore
from prompthone.tasks.example import Example, Task


@dataclass
class ResumePlan:
    """Everything `run_optimization` needs to continue a run."""

    task: Task
    optimizer: Optimizer
    task_model: Model
    meta_model: Model
    budget: Budget
    cache: CallCache | None
    seed: int
    scoring: Any
    final_top_k: int
    checkpoint: dict[str, Any] | None
    recorder: RunRecorder
    owned_store: RunStore | None

    def close(self) -> None:
        if self.owned_store is not None:
            self.owned_store.close()


def reopen(run_id: str, *, store: str | Path | RunStore | None, run_dir: str | Path,
           model: str | Model | None, meta_model: str | Model | None,
           cache: bool | str | Path | CallCache | None) -> ResumePlan:
    """The plan to continue `run_id`, after checking it can be continued (raises StoreError/ConfigError)."""
    from prompthone.api import resolve_cache, resolve_model

    db = open_store(store, run_dir)
    owned = None if isinstance(store, RunStore) else db
    try:
        run = db.get_run(run_id)
        if run.status == "finished":
            raise StoreError(f"run {run_id!r} has finished; there is nothing to resume "
                             f"(its result: {Path(run_dir) / run_id})")
        _refuse_if_alive(run_id, db)
        config = run.config
        provenance: dict[str, Any] = config.get("provenance") or {}
        task_model = resolve_model(model if model is not None else _spec(provenance, "model", run_id))
        if meta_model is not None:
            meta = resolve_model(meta_model)
        elif provenance.get("meta_is_task_model", True):
            meta = task_model
        else:
            meta = resolve_model(_spec(provenance, "meta_model", run_id))
        _same_model(run_id, "task model", config.get("task_model"), task_model)
        _same_model(run_id, "meta model", config.get("meta_model"), meta)
        if cache is None:
            cache = provenance.get("cache") or False
        budget = config.get("budget") or {}
        point = db.last_checkpoint(run_id)
        recorder = RunRecorder(db, run_id, Path(run_dir))
        if point is None:  # stopped before its first step ended: start it again (the cache has its calls)
            recorder.rewind(0, 0)
        return ResumePlan(
            task=_task(config, db.examples(run_id)),
            optimizer=get_method(config["method"]).from_options(config.get("options") or {}),
            task_model=task_model, meta_model=meta,
            budget=Budget(calls=budget.get("calls"), tokens=budget.get("tokens"), task_calls=budget.get("task_calls")),
            cache=resolve_cache(cache), seed=int(config["seed"]), scoring=config.get("scoring", "auto"),
            final_top_k=int(config.get("final_top_k", 3)), checkpoint=None if point is None else point[1],
            recorder=recorder, owned_store=owned)
    except BaseException:
        if owned is not None:
            owned.close()
        raise


def _task(config: dict[str, Any], rows: list[dict[str, Any]]) -> Task:
    """The run's task from the store's examples (by split, in order) and the task fields in its config."""
    spec = config["task"]
    splits: dict[str, list[tuple[int, Example]]] = {"train": [], "dev": [], "test": []}
    for row in rows:
        splits[row["split"]].append((int(row["index"]), Example(row["input"], row["target"])))
    train, dev, test = (tuple(ex for _, ex in sorted(splits[s], key=lambda p: p[0])) for s in ("train", "dev", "test"))
    sizes = spec.get("sizes") or {}
    if sizes and sizes != {"train": len(train), "dev": len(dev), "test": len(test)}:
        raise StoreError(f"the store holds {len(train)}/{len(dev)}/{len(test)} examples for this run, its config "
                         f"says {sizes['train']}/{sizes['dev']}/{sizes['test']}: the run's records are incomplete")
    labels = spec.get("labels")
    return Task(spec["name"], train, dev, test, metric=spec["metric"],
                labels=tuple(labels) if labels is not None else None, instruction=spec.get("instruction", ""),
                output_format=spec.get("output_format", ""), description=spec.get("description", ""))


def _spec(provenance: dict[str, Any], key: str, run_id: str) -> str:
    spec = provenance.get(key)
    if not isinstance(spec, str):
        raise ConfigError(f"run {run_id!r} did not store its {key.replace('_', ' ')} (an object, or a URL holding "
                          f"credentials, which prompthone never writes down): pass it again ({key}=..., on the "
                          f"command line --{key.replace('_', '-')})")
    return spec


def _same_model(run_id: str, role: str, recorded: Any, model: Model) -> None:
    if recorded is not None and recorded != model.id:
        raise ConfigError(f"run {run_id!r} was made with {role} {recorded}, but the one given now is {model.id}: "
                          "a different model would not continue the same run")


def _refuse_if_alive(run_id: str, db: RunStore) -> None:
    """A run whose process still lives on this machine is not resumed a second time beside it."""
    host, pid = db.run_process(run_id)
    if host != socket.gethostname() or pid is None or pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise StoreError(f"run {run_id!r} is still running (pid {pid} on {host}); stop it before resuming")
