"""A `RunData` from the run store, the report's second source beside a run directory.

The store is the source of truth while a run goes and after a crash (the run directory is exported only when a
run ends), so `prompthone report <run id>` reads it: a killed or still running run gets a report too.
"""

from __future__ import annotations

from prompthone.report.data import RunData
from prompthone.store import RunRecord, RunStore
from prompthone.store.export import evaluation_record


def run_data_from_store(store: RunStore, run_id: str, *, record: RunRecord | None = None,
                        details: bool = True) -> RunData:
    """Everything the report reads about `run_id` (raises StoreError for an unknown id). `details=False` leaves
    out events, examples and per-example evaluations: the dashboard's run pages, refreshed every 2 s, need none."""
    record = record or store.get_run(run_id)
    record.refuse_group("reported")
    if not details:
        return RunData(run_id=record.id, status=record.status, config=record.config,
                       candidates=store.candidates(run_id), steps=store.steps(run_id), result=record.result)
    evaluations = [evaluation_record(e) for e in store.evaluations(run_id)]
    return RunData(run_id=record.id, status=record.status, config=record.config, candidates=store.candidates(run_id),
                   steps=store.steps(run_id), events=store.events(run_id), examples=store.examples(run_id),
                   evaluations=evaluations, result=record.result, path=None)
