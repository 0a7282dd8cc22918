"""The run directory: a run's records as JSON files, exported from the run store (`store.export`) when a run ends.

Run ids, and reading a directory's candidates. Files: `config.json` (what was asked, with versions),
`candidates.jsonl` (one line per candidate; when several lines name one id the last one wins), `steps.jsonl`
(one line per optimizer step), `events.jsonl` (a method's decisions), `examples.jsonl` (the task's examples
with their content keys), `evaluations.jsonl` (per-example outcomes of full scorings: candidate, score key,
example key, prediction, score), `result.json`, `run.json` (the run's row). A crash loses nothing that was
recorded; model calls themselves live in the call cache.
"""

from __future__ import annotations

import json
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
