"""A stored run written out as a JSON run directory: for reading without a database, archiving, sharing.

The layout is `run_dir.RunDirectory`'s (config.json, candidates.jsonl, steps.jsonl, events.jsonl, result.json)
plus run.json (the run's row, status included), in the line formats the driver writes (evaluations.jsonl names
the candidate `candidate`), so `report.data.RunData.from_run_dir` reads an export like a live run directory.
candidates.jsonl holds one line per candidate, its latest state: `run_dir.read_candidates` gets what the store
holds. Each file is read in its own transaction: an export of a running run may be a step apart between files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompthone.errors import StoreError
from prompthone.store.schema import dump_json

if TYPE_CHECKING:
    from prompthone.store.db import RunStore


def evaluation_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored evaluation in the driver's line format (the candidate is named `candidate`, not `cand_id`)."""
    return {"candidate": row["cand_id"], "key": row["key"], "hash": row["hash"], "prediction": row["prediction"],
            "score": row["score"]}


def export_run_dir(store: RunStore, run_id: str, path: Path) -> Path:
    """Write `run_id` to the directory `path`, all at once: readers see the old export or the new one.

    The files go to a temporary directory beside `path`, renamed into place. An existing earlier export of the
    same run is replaced; any other existing directory is left alone and refused.
    """
    run = store.get_run(run_id)
    _check_target(path, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_json(tmp / "run.json", {k: v for k, v in run.to_dict().items() if k not in ("config", "result")})
        _write_json(tmp / "config.json", run.config)
        _write_lines(tmp / "candidates.jsonl", store.candidates(run_id).values())
        _write_lines(tmp / "steps.jsonl", store.steps(run_id))
        _write_lines(tmp / "events.jsonl", store.events(run_id))
        _write_lines(tmp / "examples.jsonl", store.examples(run_id))
        _write_lines(tmp / "evaluations.jsonl", map(evaluation_record, store.evaluations(run_id)))
        if run.result is not None:
            _write_json(tmp / "result.json", run.result)
        tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be read
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_target(path: Path, run_id: str) -> None:
    if not path.exists():
        return
    try:
        previous = json.loads((path / "run.json").read_text(encoding="utf-8")).get("id")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != run_id:
        raise StoreError(f"cannot export run {run_id!r} to {path}: it exists and is not an earlier export "
                         "of this run; choose a new directory")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _write_lines(path: Path, records: Iterable[Any]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(dump_json(record) + "\n")
