"""What a run's server backends did: their fault counters by role, carried over a resume, and the one line a user
reads when a backend fails for good.

Server backends that count their faults (`OpenAICompatModel.stats`: retries, 429s, timeouts, ...) have them
recorded per role in every step record and in the result (`backend`), so a run says what its server did.
"""

from __future__ import annotations

from typing import Any

from prompthone.errors import BackendError
from prompthone.models.base import Model
from prompthone.progress import fault_summary


class BackendFaults:
    """What the run's server backends counted (`stats` of e.g. `OpenAICompatModel`: requests, retries, failures,
    timeouts, connection errors, malformed replies, `http_<status>`), by role, since the run started here.

    Backends keep counting over their life (one model may serve several runs in a process), so the counts are the
    difference from a snapshot taken at the start, plus `carried`: what earlier processes of a resumed run counted.
    A meta model that is the task model is counted once, under "task". Models without `stats` are left out.
    """

    def __init__(self, task_model: Model, meta_model: Model | None,
                 carried: dict[str, dict[str, int]] | None = None) -> None:
        self.models: dict[str, Any] = {}
        for role, model in (("task", task_model), ("meta", meta_model)):
            if model is not None and isinstance(getattr(model, "stats", None), dict) \
                    and all(model is not m for m in self.models.values()):
                self.models[role] = model
        self.start = {role: dict(model.stats) for role, model in self.models.items()}
        self.carried: dict[str, dict[str, int]] = dict(carried or {})

    def counts(self) -> dict[str, dict[str, int]]:
        """Per role, every counter that is not zero (requests, retries and failures always)."""
        out: dict[str, dict[str, int]] = {}
        for role in dict.fromkeys([*self.models, *self.carried]):
            now = dict(self.models[role].stats) if role in self.models else {}
            start, before = self.start.get(role, {}), self.carried.get(role, {})
            keys = dict.fromkeys(["requests", "retries", "failures", *sorted({*now, *before})])
            totals = {k: int(before.get(k, 0)) + int(now.get(k, 0)) - int(start.get(k, 0)) for k in keys}
            out[role] = {k: v for k, v in totals.items() if v or k in ("requests", "retries", "failures")}
        return out


def counted_before(result: dict[str, Any] | None, steps: list[dict[str, Any]], step: int) -> dict[str, dict[str, int]]:
    """The fault counts of the processes that worked on a run before a resume from `step`: the stopped run's
    result when it recorded one (a backend failure), else the counts at that step (a kill loses the rest)."""
    previous = result or {}
    if isinstance(previous.get("backend"), dict):
        return previous["backend"]
    at_step = [s for s in steps if s.get("step") == step]
    backend = at_step[0].get("backend") if at_step else None
    return backend if isinstance(backend, dict) else {}


def stopped_message(run_id: str, where: str, step: int, error: BackendError,
                    counts: dict[str, dict[str, int]]) -> str:
    """One line for the user: what failed, what is kept, how to continue."""
    faults = fault_summary(counts)
    kept = (f"Its {step} finished step{'s' if step != 1 else ''} and resume point are stored" if step
            else "It is stored with its seed and settings (no step had finished)")
    return (f"run {run_id} stopped {where}: {error}"
            f"{f' ({faults})' if faults else ''}. {kept}: once the cause is fixed (the server answers again), "
            f"continue it with `prompthone optimize --resume {run_id}` (with the same --runs-dir/--store; Python: "
            f"ph.resume({run_id!r}))")
