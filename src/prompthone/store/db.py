"""`RunStore`: a run's candidates, steps, events, examples and per-example scores in SQLite or PostgreSQL.

The model is Optuna's RDB storage: one URL names the storage, Alembic keeps the schema current, and every
write is its own short transaction committed before the call returns, so a killed process loses at most
the write in flight and another process (a resumer, a dashboard, a second worker) sees everything else.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from prompthone.errors import StoreError
from prompthone.store import engine as engines
from prompthone.store.connection import StoreConnection
from prompthone.store.record import RunRecord, run_record
from prompthone.store.schema import RUN_STATUSES, Base, utcnow

RUNS, STEPS, CANDIDATES, EXAMPLES, EVALUATIONS, EVENTS = (
    Base.metadata.tables[name] for name in ("runs", "steps", "candidates", "examples", "evaluations", "events"))
_CANDIDATE_KEYS = ("id", "parent", "origin", "step", "prompt", "scores", "n_scored", "data")
_FINAL_STATUSES = ("finished", "failed", "interrupted")
_SEQ_RETRIES = 20
_SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}


class RunStore(StoreConnection):
    """Runs in a database: a SQLite file by default, PostgreSQL by URL; safe to share between processes."""

    @classmethod
    def default(cls, runs_dir: Path) -> RunStore:
        """The store next to the runs: `runs_dir/prompthone.sqlite` (the directory is created)."""
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(runs_dir) / "prompthone.sqlite")

    # -- writes -----------------------------------------------------------------------------------------------

    def create_run(self, run_id: str, *, method: str, task: str, seed: int, config: dict[str, Any]) -> str:
        """Add a running run; an id already taken gets "-2", "-3", ... (as run directories do). Returns the id."""
        now = utcnow()
        row = {"method": method, "task": task, "status": "running", "seed": seed, "config": config,
               "created_at": now, "updated_at": now, "heartbeat_at": now, "host": socket.gethostname(),
               "pid": os.getpid()}
        n = 1
        while True:
            candidate_id = run_id if n == 1 else f"{run_id}-{n}"
            try:
                with self._tx() as conn:
                    conn.execute(insert(RUNS).values(id=candidate_id, **row))
                return candidate_id
            except IntegrityError as exc:
                with self._tx(write=False) as conn:
                    taken = conn.execute(select(RUNS.c.id).where(RUNS.c.id == candidate_id)).first()
                if taken is None:
                    raise StoreError(f"store {self._url.display}: cannot create run {candidate_id!r}: "
                                     f"{engines.reason(exc, self._url)}") from None
                n += 1

    def record_candidate(self, run_id: str, cand: dict[str, Any]) -> None:
        """Upsert a candidate's latest state (`Candidate.to_dict()`; other keys are kept alongside)."""
        extra = {k: v for k, v in cand.items() if k not in _CANDIDATE_KEYS}
        row = {"run_id": run_id, "cand_id": int(cand["id"]), "parent": cand.get("parent"),
               "origin": cand["origin"], "step": int(cand["step"]), "prompt": cand["prompt"],
               "scores": cand.get("scores", {}), "n_scored": cand.get("n_scored", {}), "data": cand.get("data", {}),
               "extra": extra or None, "updated_at": utcnow()}
        with self._run_tx(run_id) as conn:
            self._upsert(conn, CANDIDATES, [row], ("run_id", "cand_id"))

    def record_step(self, run_id: str, record: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> None:
        """Record a step (re-recording a step after a resume overwrites it); `checkpoint` is opaque resume state."""
        now = utcnow()
        row = {"run_id": run_id, "step": int(record["step"]), "record": record, "checkpoint": checkpoint,
               "created_at": now}
        with self._run_tx(run_id) as conn:
            self._upsert(conn, STEPS, [row], ("run_id", "step"))
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(updated_at=now))

    def record_event(self, run_id: str, event: dict[str, Any]) -> None:
        """Append an event. Its `step` column is its own "iteration"/"step" when it has one, else the highest
        step recorded so far: either way the steps completed when it happened (what `delete_steps_after` uses)."""
        own = event.get("iteration", event.get("step"))
        for _ in range(_SEQ_RETRIES):  # two writers of one run on PostgreSQL may race for a seq: retry
            try:
                with self._tx() as conn:
                    step = own if isinstance(own, int) and not isinstance(own, bool) else conn.execute(
                        select(func.coalesce(func.max(STEPS.c.step), 0)).where(STEPS.c.run_id == run_id)).scalar()
                    seq = conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0) + 1)
                                       .where(EVENTS.c.run_id == run_id)).scalar()
                    conn.execute(insert(EVENTS).values(run_id=run_id, seq=seq, step=step, data=event,
                                                       created_at=utcnow()))
                return
            except IntegrityError as exc:
                with self._tx(write=False) as conn:
                    self._require_run(conn, run_id)
                failure = engines.reason(exc, self._url)
                if self._sqlite:  # writes are serialized there: a conflict is not a race
                    break
        raise StoreError(f"store {self._url.display}: cannot append an event to run {run_id!r}: {failure}")

    def record_examples(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Record the examples a run scores (hash, split, index, input, target); recording one again is a no-op."""
        if not rows:
            return
        values = [{"run_id": run_id, "hash": r["hash"], "split": r["split"], "idx": int(r["index"]),
                   "input": r["input"], "target": r["target"]} for r in rows]
        with self._run_tx(run_id) as conn:
            conn.execute(self._insert(EXAMPLES).on_conflict_do_nothing(index_elements=["run_id", "split", "idx"]),
                         values)

    def record_evaluations(self, run_id: str, cand_id: int, key: str, rows: list[dict[str, Any]]) -> None:
        """Upsert per-example scores (hash, score, prediction) of one candidate under one score key."""
        by_hash = {r["hash"]: r for r in rows}  # one statement may not touch a row twice: the last one wins
        values = [{"run_id": run_id, "cand_id": int(cand_id), "key": key, "hash": h, "score": float(r["score"]),
                   "prediction": r.get("prediction")} for h, r in by_hash.items()]
        if values:
            with self._run_tx(run_id) as conn:
                self._upsert(conn, EVALUATIONS, values, ("run_id", "cand_id", "key", "hash"))

    def heartbeat(self, run_id: str) -> None:
        """Say the run is alive, and which process runs it (a resumed run moves to another host/pid)."""
        self._update_run(run_id, heartbeat_at=utcnow(), host=socket.gethostname(), pid=os.getpid())

    def finish_run(self, run_id: str, status: str, result: dict[str, Any] | None) -> None:
        """End a run with its final status (finished, failed, interrupted) and result."""
        if status not in _FINAL_STATUSES:
            raise StoreError(f"a run ends as one of {', '.join(_FINAL_STATUSES)}, not {status!r}")
        now = utcnow()
        self._update_run(run_id, status=status, result=result, finished_at=now, updated_at=now)

    def claim_run(self, run_id: str) -> None:
        """Make this process the run's owner again, before resuming it: running, no end, no result yet."""
        now = utcnow()
        self._update_run(run_id, status="running", result=None, finished_at=None, updated_at=now, heartbeat_at=now,
                         host=socket.gethostname(), pid=os.getpid())

    def set_status(self, run_id: str, status: str) -> None:
        """Change a run's status; back to "running" (a resume) clears `finished_at`."""
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
        now = utcnow()
        self._update_run(run_id, status=status, updated_at=now, finished_at=None if status == "running" else now)

    def delete_steps_after(self, run_id: str, step: int) -> None:
        """Forget what a run recorded after its checkpoint at `step`, before resuming from it: steps above `step`
        and events written once `step` steps were complete (their step column is >= `step`)."""
        with self._run_tx(run_id) as conn:
            self._require_run(conn, run_id)
            conn.execute(delete(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.step > step))
            conn.execute(delete(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.step >= step))

    def delete_candidates_from(self, run_id: str, cand_id: int) -> None:
        """Forget candidates numbered `cand_id` and up, with their evaluations, before resuming from a checkpoint
        whose next candidate id is `cand_id`: the resumed run makes them again under the same ids."""
        with self._run_tx(run_id) as conn:
            self._require_run(conn, run_id)
            conn.execute(delete(CANDIDATES).where(CANDIDATES.c.run_id == run_id, CANDIDATES.c.cand_id >= cand_id))
            conn.execute(delete(EVALUATIONS).where(EVALUATIONS.c.run_id == run_id, EVALUATIONS.c.cand_id >= cand_id))

    # -- reads ------------------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        with self._tx(write=False) as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
            if row is None:
                self._require_run(conn, run_id)
        assert row is not None
        return run_record(row)

    def list_runs(self, limit: int | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs newest first, optionally only those with `status`."""
        query = select(RUNS).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(RUNS.c.status == status)
        with self._tx(write=False) as conn:
            return [run_record(row) for row in conn.execute(query).mappings()]

    def candidates(self, run_id: str) -> dict[int, dict[str, Any]]:
        """Each candidate's latest record by id, shaped like `Candidate.to_dict()` (plus any extra keys)."""
        rows = self._read(run_id, select(CANDIDATES).where(CANDIDATES.c.run_id == run_id)
                          .order_by(CANDIDATES.c.cand_id))
        return {row.cand_id: {"id": row.cand_id, "parent": row.parent, "origin": row.origin, "step": row.step,
                              "prompt": row.prompt, "scores": row.scores, "n_scored": row.n_scored,
                              "data": row.data, **(row.extra or {})} for row in rows}

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._read(run_id, select(STEPS.c.record).where(STEPS.c.run_id == run_id).order_by(STEPS.c.step))
        return [row.record for row in rows]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._read(run_id, select(EVENTS.c.data).where(EVENTS.c.run_id == run_id).order_by(EVENTS.c.seq))
        return [row.data for row in rows]

    def examples(self, run_id: str) -> list[dict[str, Any]]:
        """The run's examples in task order: train, dev, test (then any other split), each by index."""
        split_order = case(_SPLIT_ORDER, value=EXAMPLES.c.split, else_=len(_SPLIT_ORDER))
        rows = self._read(run_id, select(EXAMPLES).where(EXAMPLES.c.run_id == run_id)
                          .order_by(split_order, EXAMPLES.c.split, EXAMPLES.c.idx))
        return [{"hash": r.hash, "split": r.split, "index": r.idx, "input": r.input, "target": r.target}
                for r in rows]

    def evaluations(self, run_id: str, cand_id: int | None = None, key: str | None = None) -> list[dict[str, Any]]:
        """Per-example scores, of one candidate and one score key where given."""
        query = select(EVALUATIONS).where(EVALUATIONS.c.run_id == run_id)
        if cand_id is not None:
            query = query.where(EVALUATIONS.c.cand_id == cand_id)
        if key is not None:
            query = query.where(EVALUATIONS.c.key == key)
        rows = self._read(run_id, query.order_by(EVALUATIONS.c.cand_id, EVALUATIONS.c.key, EVALUATIONS.c.hash))
        return [{"cand_id": r.cand_id, "key": r.key, "hash": r.hash, "score": r.score, "prediction": r.prediction}
                for r in rows]

    def last_checkpoint(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The highest step that has a checkpoint, and the checkpoint: where a resume starts."""
        rows = self._read(run_id, select(STEPS.c.step, STEPS.c.checkpoint)
                          .where(STEPS.c.run_id == run_id, STEPS.c.checkpoint.is_not(None))
                          .order_by(STEPS.c.step.desc()).limit(1))
        return (rows[0].step, rows[0].checkpoint) if rows else None
