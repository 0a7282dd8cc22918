"""The run directory: a run's records as JSON files, exported from the run store (`store.export`) when a run ends.

Files: `config.json` (what was asked, with versions), `candidates.jsonl` (one line per candidate update,
last line per id wins), `steps.jsonl` (one line per optimizer step), `events.jsonl` (a method's decisions),
`examples.jsonl` (the task's examples with their content keys), `evaluations.jsonl` (per-example outcomes of
full scorings: candidate, score key, example key, prediction, score), `result.json` (written atomically at
the end). A crash loses nothing that was recorded; model calls themselves live in the call cache.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "run"


def new_run_id(method: str, task_name: str) -> str:
    """A sortable, readable id: UTC time, method, task."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{_slug(method)}-{_slug(task_name)}"


class RunDirectory:
    """Append-only JSON records of one run under `root/run_id`."""

    def __init__(self, root: str | Path, run_id: str) -> None:
        base = Path(root) / run_id
        path, n = base, 1
        while path.exists():  # two runs started in the same second
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True)
        self.path = path
        self.run_id = path.name

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write `name` atomically (temp file + rename), so readers never see half a file."""
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target


def read_candidates(run_path: str | Path) -> dict[int, dict[str, Any]]:
    """The latest record of each candidate in a run directory."""
    latest: dict[int, dict[str, Any]] = {}
    path = Path(run_path) / "candidates.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                latest[int(record["id"])] = record
    return latest
