"""`RunRecord`: a run's row as plain, frozen data, the form runs cross the store's boundary in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from prompthone.errors import ConfigError

#: the methods of runs that group other runs (`run.group`) rather than search prompts themselves
GROUP_METHODS = ("compare", "study")


@dataclass(frozen=True)
class RunRecord:
    """A run's row. `updated_at` moves with steps and status; `heartbeat_at`/`host`/`pid` say who runs it now."""

    id: str
    method: str
    task: str
    status: str
    seed: int
    config: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None = None
    host: str | None = None
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}

    def refuse_group(self, action: str) -> None:
        """A group run has no prompts of its own: say so and name its members, instead of failing further on."""
        if self.method not in GROUP_METHODS:
            return
        members = (self.result or {}).get("members") or []
        named = f"its member runs: {', '.join(members)}" if members else "it has no finished member runs"
        raise ConfigError(f"run {self.id!r} is a {self.method} run, which groups other runs and cannot be "
                          f"{action} itself; {named}")


def run_record(row: Any) -> RunRecord:
    """A RunRecord from a `runs` row (a SQLAlchemy row mapping)."""
    return RunRecord(id=row.id, method=row.method, task=row.task, status=row.status, seed=row.seed,
                     config=row.config, result=row.result, created_at=row.created_at, updated_at=row.updated_at,
                     finished_at=row.finished_at, heartbeat_at=row.heartbeat_at, host=row.host, pid=row.pid)
