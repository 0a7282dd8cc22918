"""Where a run's records go while it runs: the run store, the source of truth; the run directory is its export.

Every candidate, event, per-example score and step (with its resume point) is written to the store the moment it
exists, each in its own committed transaction, so a killed process loses nothing it had finished. When the run
ends for any reason (finished, budget, interrupted, an exception) the store's records are exported as the JSON
run directory (`runs/<id>/`), which tools and people read; `prompthone export` writes it again from the store.
A run that records nothing (`run_root=None`) gets the `NullRecorder`, so the loop never asks whether it records.
While the recorder owns a running run (from `create` or the claim in `rewind` to `finish` or `release`) its
`Heartbeat` stamps the run, so that a process that dies without a word leaves a run readers can see is stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prompthone.evaluation.evaluator import EvalResult
from prompthone.store.db import RunStore
from prompthone.store.export import export_run_dir
from prompthone.store.heartbeat import Heartbeat
from prompthone.tasks.example import Task, example_key


class RunRecorder:
    """One run's writer into a `RunStore`, exporting the run directory under `export_root` when the run ends."""

    records = True

    def __init__(self, store: RunStore, run_id: str, export_root: Path | None) -> None:
        self.store = store
        self.run_id = run_id
        self.export_root = export_root
        self._heartbeat: Heartbeat | None = None

    @classmethod
    def create(cls, store: RunStore, run_id: str, *, task: Task, method: str, seed: int, config: dict[str, Any],
               export_root: Path | None) -> RunRecorder:
        """A new run in `store` (a taken id gets a suffix), with every task example under its content key."""
        run_id = store.create_run(run_id, method=method, task=task.name, seed=seed, config=config)
        store.record_examples(run_id, [
            {"hash": ex.key, "split": split, "index": i, "input": ex.input, "target": ex.target}
            for split in ("train", "dev", "test") for i, ex in enumerate(task.split(split))])
        recorder = cls(store, run_id, export_root)
        recorder._beat()
        return recorder

    @property
    def path(self) -> Path | None:
        """The run directory the export goes to."""
        return None if self.export_root is None else Path(self.export_root) / self.run_id

    def candidate(self, record: dict[str, Any]) -> None:
        self.store.record_candidate(self.run_id, record)

    def event(self, record: dict[str, Any]) -> None:
        self.store.record_event(self.run_id, record)

    def evaluations(self, cand_id: int, key: str, result: EvalResult) -> None:
        self.store.record_evaluations(self.run_id, cand_id, key, [
            {"hash": example_key(r.input, r.target), "prediction": r.prediction, "score": r.score}
            for r in result.examples])

    def reuse_evaluations(self, cand_id: int, key: str, as_key: str) -> None:
        """File the per-example scores a candidate has under `key` under `as_key` too (a score reused, not paid)."""
        self.store.record_evaluations(self.run_id, cand_id, as_key, self.store.evaluations(self.run_id, cand_id, key))

    def step(self, record: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        self.store.record_step(self.run_id, record, checkpoint)

    def rewind(self, step: int, next_id: int) -> None:
        """Before a resume from the checkpoint of `step` (0: from the start): drop what the stopped process recorded
        after it, and claim the run for this process."""
        self.store.delete_steps_after(self.run_id, step)
        self.store.delete_candidates_from(self.run_id, next_id)
        self.store.claim_run(self.run_id)
        self._beat()

    def finish(self, status: str, result: dict[str, Any] | None) -> Path | None:
        """Mark the run ended and export its directory (returned)."""
        self.release()
        self.store.finish_run(self.run_id, status, result)
        return self.export()

    def release(self) -> None:
        """Stop the heartbeat (idempotent): the run is ended, or this process gives it up without ending it."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def export(self) -> Path | None:
        path = self.path
        if path is not None:
            export_run_dir(self.store, self.run_id, path)
        return path

    def _beat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self.store, self.run_id).start()


class NullRecorder:
    """The recorder of a run that records nothing: every record is dropped, there is no run id or directory."""

    records = False
    run_id: str | None = None
    path: Path | None = None

    def candidate(self, record: dict[str, Any]) -> None:
        return None

    def event(self, record: dict[str, Any]) -> None:
        return None

    def evaluations(self, cand_id: int, key: str, result: EvalResult) -> None:
        return None

    def reuse_evaluations(self, cand_id: int, key: str, as_key: str) -> None:
        return None

    def step(self, record: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        return None

    def rewind(self, step: int, next_id: int) -> None:
        return None

    def finish(self, status: str, result: dict[str, Any] | None) -> Path | None:
        return None

    def release(self) -> None:
        return None


Recorder = RunRecorder | NullRecorder
