"""A stored run written out as a JSON run directory: for reading without a database, archiving, sharing.

The layout is `RECORD_FILES` (run.json: the run's row, status included; config.json, candidates.jsonl,
steps.jsonl, events.jsonl, examples.jsonl, evaluations.jsonl, result.json), in the line formats the driver
writes (evaluations.jsonl names the candidate `candidate`), so `report.data.RunData.from_run_dir` reads an
export like a live run directory. candidates.jsonl holds one line per candidate, its latest state:
`run_dir.read_candidates` gets what the store holds. Each file is read in its own transaction: an export of a
running run may be a step apart between files.
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


#: the files an export writes; anything else in a run directory (a report, a group's tables) is the user's
RECORD_FILES = ("run.json", "config.json", "candidates.jsonl", "steps.jsonl", "events.jsonl", "examples.jsonl",
                "evaluations.jsonl", "result.json")


def export_run_dir(store: RunStore, run_id: str, path: Path) -> Path:
    """Write `run_id` to the directory `path`, all at once: readers see the old export or the new one.

    The files go to a temporary directory beside `path`, renamed into place. An existing earlier export of the
    same run is replaced, keeping whatever else it holds (a `report.html`, a group's own files); any other
    existing directory is left alone and refused.
    """
    _check_target(path, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write_records(store, run_id, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be read
        old = None
        if path.exists():
            _keep_others(path, tmp)
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_records(store: RunStore, run_id: str, directory: Path) -> None:
    """Write the run's record files into `directory` (which exists), each file replaced whole (temp + rename),
    leaving every other file there alone: how a group run's directory gets its records beside its tables."""
    run = store.get_run(run_id)
    files: dict[str, Any] = {
        "run.json": {k: v for k, v in run.to_dict().items() if k not in ("config", "result")},
        "config.json": run.config, "candidates.jsonl": store.candidates(run_id).values(),
        "steps.jsonl": store.steps(run_id), "events.jsonl": store.events(run_id),
        "examples.jsonl": store.examples(run_id),
        "evaluations.jsonl": map(evaluation_record, store.evaluations(run_id))}
    if run.result is not None:
        files["result.json"] = run.result
    for name, content in files.items():
        target = directory / name
        tmp = target.with_name(f".{name}.tmp")
        (_write_lines if name.endswith(".jsonl") else _write_json)(tmp, content)
        os.replace(tmp, target)


def _keep_others(old: Path, new: Path) -> None:
    """Copy what an earlier export holds beyond the record files into the new one."""
    for entry in old.iterdir():
        if entry.name in RECORD_FILES or (new / entry.name).exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, new / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, new / entry.name, follow_symlinks=False)


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
