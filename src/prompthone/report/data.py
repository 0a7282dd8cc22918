"""Everything a report reads about one run, as plain data: `RunData`, loaded from a run directory.

The report code works only from `RunData`, so any source that can fill one (the run directory today, the run
store later) gets the same report. Files a run may lack (events, examples, evaluations, a result while the
run is still going) load as empty; a malformed line raises `InputError` naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.errors import InputError
from prompthone.tasks.lines import jsonl_records

#: files of a run directory; a directory holding none of the first two is not a run
CONFIG, CANDIDATES, STEPS, EVENTS = "config.json", "candidates.jsonl", "steps.jsonl", "events.jsonl"
EXAMPLES, EVALUATIONS, RESULT, RUN = "examples.jsonl", "evaluations.jsonl", "result.json", "run.json"


@dataclass(frozen=True)
class RunData:
    """One run: what was asked, every candidate (latest record per id), steps, events, per-example records.

    `examples` are the task's examples ({hash, split, index, input, target}); `evaluations` the per-example
    scores ({candidate, key, hash, prediction, score}), one per (candidate, key, hash), the latest kept.
    `result` is `OptimizationResult.to_dict()` once the run has finished, else None. `path` is where the run
    was read from (None for a run from a store); it is the default place for the report.
    """

    run_id: str
    status: str
    config: dict[str, Any]
    candidates: dict[int, dict[str, Any]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    path: Path | None = None

    @classmethod
    def from_run_dir(cls, path: str | Path) -> RunData:
        """Read a run directory written by `run_optimization` (finished, failed, interrupted or still running)."""
        root = Path(path)
        if not root.is_dir():
            raise InputError("not a run directory (no such directory)", path=str(root))
        if not (root / CONFIG).is_file() and not (root / CANDIDATES).is_file():
            raise InputError(f"not a run directory: it has neither {CONFIG} nor {CANDIDATES}", path=str(root))
        config = _read_json(root / CONFIG) or {}
        result = _read_json(root / RESULT)
        run_info = _read_json(root / RUN) or {}
        candidates: dict[int, dict[str, Any]] = {}
        for line, record in _read_jsonl(root / CANDIDATES):
            candidates[_int_field(record, "id", root / CANDIDATES, line)] = record
        latest: dict[tuple[int, str, str], dict[str, Any]] = {}
        for line, record in _read_jsonl(root / EVALUATIONS):
            for name in ("key", "hash"):
                if not isinstance(record.get(name), str):
                    raise InputError("expected a string", path=str(root / EVALUATIONS), line=line, field=name)
            latest[(_int_field(record, "candidate", root / EVALUATIONS, line), record["key"], record["hash"])] = record
        examples = []
        for line, record in _read_jsonl(root / EXAMPLES):
            if not isinstance(record.get("hash"), str):
                raise InputError("expected a string", path=str(root / EXAMPLES), line=line, field="hash")
            examples.append(record)
        run_id = str(run_info.get("id") or root.name)
        return cls(run_id=run_id, status=run_status(run_info, result), config=config, candidates=candidates,
                   steps=[r for _, r in _read_jsonl(root / STEPS)], events=[r for _, r in _read_jsonl(root / EVENTS)],
                   examples=examples, evaluations=list(latest.values()), result=result, path=root)


def run_status(run_info: dict[str, Any], result: dict[str, Any] | None) -> str:
    """`run.json`'s status when there is one; else 'finished' with a result and 'incomplete' without."""
    status = run_info.get("status")
    if isinstance(status, str) and status:
        return status
    return "finished" if result is not None else "incomplete"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path=str(path))
    return data


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a run-directory file, none when it does not exist yet. A
    last line without its newline that does not parse is skipped: a running run is appending it right now."""
    if path.is_file():
        yield from jsonl_records(path, live=True)


def _int_field(record: dict[str, Any], name: str, path: Path, line: int) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("expected an integer", path=str(path), line=line, field=name)
    return value
