"""Reading a stopped run back from its store: its config, task, last resume point and recorder, in one opening.

The store holds everything a run needs to continue, so a resume never re-reads the task file (which may have
changed since) and never asks the user to repeat options: the examples with their splits are in the store,
the method's options, seed, budget, scoring, model specs and cache file in its `RunConfig`. What cannot be stored
is checked instead: a model given anew must be the same model (same id), and a run that is still alive is not
resumed twice. `api.resume` builds the models and continues the run (`run_optimization(continuation=...)`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prompthone.errors import ConfigError, StoreError
from prompthone.models.base import Model
from prompthone.run.config import RunConfig, TaskFields
from prompthone.run.driver import Continuation, open_store
from prompthone.run.faults import counted_before
from prompthone.run.recorder import RunRecorder
from prompthone.store.db import RunStore
from prompthone.store.heartbeat import is_stale
from prompthone.tasks.example import Example, Task


@dataclass
class StoredRun:
    """A run to continue: its config, its task (from the store's examples) and its continuation."""

    run_id: str
    config: RunConfig
    task: Task
    continuation: Continuation
    owned_store: RunStore | None

    def close(self) -> None:
        if self.owned_store is not None:
            self.owned_store.close()


def open_run(run_id: str, *, store: str | Path | RunStore | None, run_dir: str | Path) -> StoredRun:
    """The stored run `run_id`, after checking it can be continued (raises StoreError)."""
    db = open_store(store, run_dir)
    owned = None if isinstance(store, RunStore) else db
    try:
        run = db.get_run(run_id)
        run.refuse_group("resumed")
        if run.status == "finished":
            raise StoreError(f"run {run_id!r} has finished; there is nothing to resume "
                             f"(its result: {Path(run_dir) / run_id})")
        _refuse_if_alive(run_id, db)
        config = RunConfig.from_dict(run.config)
        point = db.last_checkpoint(run_id)
        faults = counted_before(run.result, db.steps(run_id), point[0]) if point is not None else {}
        continuation = Continuation(RunRecorder(db, run_id, Path(run_dir)), config,
                                    None if point is None else point[1], faults)
        return StoredRun(run_id, config, task_from_rows(config.task, db.examples(run_id)), continuation, owned)
    except BaseException:
        if owned is not None:
            owned.close()
        raise


def recorded_spec(run: StoredRun, role: str) -> str:
    """The spec `run` recorded for `role` ('model' or 'meta_model'), or the error that asks for it again."""
    spec = run.config.model_spec if role == "model" else run.config.meta_model_spec
    if spec is None:
        raise ConfigError(f"run {run.run_id!r} did not store its {role.replace('_', ' ')} (an object, or a URL "
                          f"holding credentials, which prompthone never writes down): pass it again ({role}=..., on "
                          f"the command line --{role.replace('_', '-')})")
    return spec


def check_same_model(run: StoredRun, role: str, model: Model) -> None:
    """A model given again must be the one the run was made with (its id, as recorded)."""
    recorded = run.config.task_model if role == "task model" else run.config.meta_model
    if recorded is not None and recorded != model.id:
        raise ConfigError(f"run {run.run_id!r} was made with {role} {recorded}, but the one given now is {model.id}: "
                          "a different model would not continue the same run")


def task_from_rows(fields: TaskFields, rows: Sequence[Mapping[str, object]]) -> Task:
    """The run's task from the store's examples (by split, in order) and the task fields in its config."""
    splits: dict[str, list[tuple[int, Example]]] = {"train": [], "dev": [], "test": []}
    for row in rows:
        splits[str(row["split"])].append((int(str(row["index"])), Example(str(row["input"]), str(row["target"]))))
    train, dev, test = (tuple(ex for _, ex in sorted(splits[s], key=lambda p: p[0])) for s in ("train", "dev", "test"))
    sizes = fields.sizes
    if sizes and sizes != {"train": len(train), "dev": len(dev), "test": len(test)}:
        raise StoreError(f"the store holds {len(train)}/{len(dev)}/{len(test)} examples for this run, its config "
                         f"says {sizes['train']}/{sizes['dev']}/{sizes['test']}: the run's records are incomplete")
    return Task(fields.name, train, dev, test, metric=fields.metric, labels=fields.labels,
                instruction=fields.instruction, output_format=fields.output_format, description=fields.description)


def _refuse_if_alive(run_id: str, db: RunStore) -> None:
    """A run whose process still lives is not resumed a second time beside it: on this machine its pid tells,
    on another its heartbeat (a running run whose stamps stopped is stale, its process gone)."""
    run = db.get_run(run_id)
    host, pid = run.host, run.pid
    if host != socket.gethostname():
        if run.status == "running" and run.heartbeat_at is not None and not is_stale(run):
            raise StoreError(f"run {run_id!r} is still running on {host} (pid {pid}, heartbeat at "
                             f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); stop it, or wait until `prompthone runs` "
                             f"shows it as stale, before resuming")
        return
    if pid is None or pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise StoreError(f"run {run_id!r} is still running (pid {pid} on {host}); stop it before resuming")
