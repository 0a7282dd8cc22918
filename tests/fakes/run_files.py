"""Reading a run directory in tests: the files every optimizer run writes, and its JSON-lines records.

Not a fake, but shared by the e2e tests the same way (`tests` is importable from the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: what `run_optimization` writes for every run; events.jsonl only when the method records events
RUN_FILES = ("config.json", "candidates.jsonl", "steps.jsonl", "result.json")


def assert_run_files(run: Path, *, events: bool = True) -> None:
    """Fail naming the first missing file of a finished run directory."""
    for name in (*RUN_FILES, *(("events.jsonl",) if events else ())):
        assert (run / name).is_file(), f"{run} lacks {name}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, in order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
