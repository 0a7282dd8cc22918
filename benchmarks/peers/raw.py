"""A peers run's raw results as one file, committed beside RESULTS.md; `--from-raw` writes the section from it.

Why one file: the section's tables need the records (`results.jsonl`), the tasks' chance levels (`tasks.json`) and
the run's settings and command; the run directory holding them is git-ignored. JSON lines, in order: one `run`
line (the command, the settings, package versions, the machine), one `task` line per task and seed, one `record`
line per run (a `harness.Record`). A peer's own extras larger than `EXTRA_LIMIT` characters (step logs,
populations) are replaced by a note pointing at the run's result file, so the file stays small enough to commit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.peers.harness import Record, Settings, TaskInfo

EXTRA_LIMIT = 2000


@dataclass
class Raw:
    """What a raw file holds."""

    command: str
    settings: Settings
    versions: dict[str, str]
    machine: str
    infos: list[TaskInfo]
    records: list[Record]


def write_raw(path: Path, raw: Raw) -> Path:
    lines = [{"kind": "run", "command": raw.command, "settings": raw.settings.to_dict(), "versions": raw.versions,
              "machine": raw.machine}]
    lines += [{"kind": "task", **asdict(info)} for info in raw.infos]
    lines += [{"kind": "record", **_trimmed(asdict(record))} for record in raw.records]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def read_raw(path: Path) -> Raw:
    """The raw file at `path` (SystemExit naming the problem when it is not one)."""
    if not path.is_file():
        raise SystemExit(f"no raw results file at {path}")
    head: dict[str, Any] | None = None
    infos, records = [], []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        line = json.loads(text)
        kind = line.pop("kind", None)
        if kind == "run":
            head = line
        elif kind == "task":
            infos.append(TaskInfo(**line))
        elif kind == "record":
            records.append(Record(**line))
        else:
            raise SystemExit(f"{path}:{number}: not a peers raw line (kind {kind!r})")
    if head is None:
        raise SystemExit(f"{path} has no `run` line: not a peers raw results file")
    settings = Settings(**{**head["settings"], "out": Path(head["settings"]["out"])})
    return Raw(head["command"], settings, dict(head["versions"]), head["machine"], infos, records)


def _trimmed(record: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(record["extra"].get("peer"), dict):
        return record
    peer = dict(record["extra"]["peer"])
    for key, value in list(peer.items()):
        size = len(json.dumps(value, default=str))
        if size > EXTRA_LIMIT:
            peer[key] = f"(trimmed: {size} characters; see result.json in the run directory)"
    return {**record, "extra": {**record["extra"], "peer": peer}}
