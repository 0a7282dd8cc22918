"""User-facing progress for long runs (rich): calls spent against the budget, cache hits, best score; and the
one-line account of what a run's server did (faults retried and failed)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from prompthone.evaluation.budget import BudgetMeter


class RunProgress:
    """A rich progress bar over model calls; a no-op when disabled (tests, `--quiet`)."""

    def __init__(self, meter: BudgetMeter, *, enabled: bool = True, label: str = "optimizing",
                 total: int | None = None) -> None:
        self.meter = meter
        budget = meter.budget
        # Count against whichever call limit is set: all calls, else task-model calls (what `compare` caps).
        self._task_only = budget.calls is None and budget.task_calls is not None
        self.total = total if total is not None else budget.task_calls if self._task_only else budget.calls
        self.enabled = enabled
        self.label = label
        self._best: float | None = None
        self._phase = ""
        self._progress: Progress | None = None
        self._task_id: TaskID | None = None

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
            self._progress.start()
            self._task_id = self._progress.add_task(self.label, total=self.total, info="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self.tick()
            self._progress.stop()

    def tick(self) -> None:
        """Refresh after a model result (cached or not)."""
        if self._progress is None or self._task_id is None:
            return
        spend = self.meter.spend
        parts = [f"best {self._best:.3f}" if self._best is not None else "", f"{spend.cache_hits} cached",
                 self._phase]
        done = spend.by_role.get("task", 0) if self._task_only else spend.calls
        self._progress.update(self._task_id, completed=done, info=" · ".join(p for p in parts if p))

    def update_best(self, score: float | None) -> None:
        self._best = score
        self.tick()

    def phase(self, name: str) -> None:
        self._phase = name
        self.tick()


#: how `fault_summary` names a backend's fault counters (`http_<status>` is shown as the status)
_FAULT_NAMES = {"timeouts": "timeouts", "connection_errors": "connection errors", "malformed": "malformed replies"}


def fault_kinds(stats: Mapping[str, int]) -> dict[str, int]:
    """The faults among a backend's counters, by display name: HTTP statuses first (ascending), then the rest."""
    statuses = sorted((k for k in stats if k.startswith("http_") and k[5:].isdigit()), key=lambda k: int(k[5:]))
    return {(k[5:] if k.startswith("http_") else _FAULT_NAMES[k]): int(stats[k])
            for k in [*statuses, *_FAULT_NAMES] if stats.get(k)}


def fault_summary(backend: Mapping[str, Mapping[str, int]]) -> str | None:
    """'server faults: 12 retried (429×4, 503×2, timeouts×1, …), 0 failed' for a run's backend counts by role
    (`OptimizationResult.backend`); None when no backend counted anything (an in-process model)."""
    parts = []
    for role, stats in backend.items():
        kinds = fault_kinds(stats)
        label = "" if list(backend) == ["task"] else f" ({role} model)"
        if not kinds:
            parts.append(f"server faults{label}: none in {stats.get('requests', 0)} requests")
            continue
        listed = ", ".join(f"{name}×{n}" for name, n in kinds.items())
        parts.append(f"server faults{label}: {stats.get('retries', 0)} retried ({listed}), "
                     f"{stats.get('failures', 0)} failed, in {stats.get('requests', 0)} requests")
    return "; ".join(parts) or None
