"""Group runs: `compare` and `study` saved in the run store the way `optimize` saves a run.

A group is a run of its own in the store (method `compare` or `study`), beside its members: every optimization
it starts is an ordinary run in the same store, with its own id, resumable and reportable as any other. While
the group goes, each finished member is an event of the group's run (so a crash loses at most the member in
flight, and `prompthone runs` shows the group as running, then stale); at the end the group's result is its
summary, and its run directory is exported from the store like any run's, with the group's own files
(`compare.md`, `study.json`, the heat map, ...) written beside the export. There is one way runs are saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prompthone.run.driver import open_store
from prompthone.run.recorder import RunRecorder
from prompthone.run.results import OptimizationResult
from prompthone.store.db import RunStore
from prompthone.store.export import write_records
from prompthone.store.record import GROUP_METHODS
from prompthone.store.run_dir import new_run_id
from prompthone.tasks.example import Task


class GroupRun:
    """A running group: its recorder, the store its members record into, and the directory they export to."""

    def __init__(self, recorder: RunRecorder, root: Path) -> None:
        self.recorder = recorder
        self.root = root
        self.members: list[str] = []

    @property
    def store(self) -> RunStore:
        return self.recorder.store

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def path(self) -> Path:
        """The group's run directory (`<root>/<group id>`): its export and its own files. Made on first use."""
        path = Path(self.root) / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def member(self, event: dict[str, Any]) -> None:
        """Record a finished member (its `run_id`, when it is a stored run, joins the group's members)."""
        if event.get("run_id"):
            self.members.append(str(event["run_id"]))
        self.recorder.event({"event": "member", **event})


@contextmanager
def group_run(kind: str, task: Task, config: dict[str, Any], *, root: str | Path, seed: int = 0,
              store: RunStore | str | Path | None = None) -> Iterator[tuple[GroupRun, dict[str, Any]]]:
    """Record a `compare` or `study` into the store under `root` (or `store`) while the block runs.

    Yields the group and a dict the block fills with the group's result; on leaving, the run is finished with it
    (`interrupted` on Ctrl-C, `failed` on an error, with the members finished so far) and exported to `root`.
    """
    if kind not in GROUP_METHODS:
        raise ValueError(f"a group run is one of {GROUP_METHODS}, not {kind!r}")
    db = open_store(store, root)
    try:
        rec = RunRecorder.create(db, new_run_id(kind, task.name), task=task, method=kind, seed=seed,
                                 config={"kind": kind, **config}, export_root=None)
        group = GroupRun(rec, Path(root))
        result: dict[str, Any] = {}
        status = "failed"
        try:
            yield group, result
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            rec.finish(status, {"members": group.members, **result})
            write_records(db, rec.run_id, group.path)
    finally:
        if not isinstance(store, RunStore):
            db.close()


def member_id(result: OptimizationResult) -> str | None:
    """The store id of a member's run: its run directory is `<root>/<run id>` (None: it recorded nothing)."""
    return Path(result.run_dir).name if result.run_dir else None
