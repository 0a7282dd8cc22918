"""The run an export reads: its found prompt, its task (from the run's own examples), how it read answers, and the
facts an MLflow entry is tagged with. A run directory, its result.json, or a run id of the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError
from prompthone.prompts.prompt import Prompt
from prompthone.report.data import RunData
from prompthone.run.config import RunConfig
from prompthone.run.resume import task_from_rows
from prompthone.store.db import RunStore
from prompthone.tasks.example import Task


@dataclass(frozen=True)
class FoundPrompt:
    run_id: str
    prompt: Prompt
    task: Task
    scoring: str
    model_spec: str | None
    cache: str | None
    result: dict[str, Any]
    run_dir: Path | None

    def tags(self) -> dict[str, str]:
        """The run's id, method, models and scores with the test comparison's interval (MLflow tags)."""
        comparison = self.result.get("test_comparison") or {}
        found = {"prompthone.run_id": self.run_id, "prompthone.method": self.result.get("method"),
                 "prompthone.task": self.task.name, "prompthone.model": self.model_spec,
                 "prompthone.seed_test_score": self.result.get("seed_test_score"),
                 "prompthone.test_score": self.result.get("test_score"),
                 "prompthone.best_dev_score": self.result.get("best_dev_score"),
                 "prompthone.improvement": self.result.get("improvement"),
                 "prompthone.test_difference": comparison.get("difference"),
                 "prompthone.test_ci95": (f"[{comparison['low']:.4f}, {comparison['high']:.4f}]"
                                          if "low" in comparison and "high" in comparison else None),
                 "prompthone.test_p_value": comparison.get("p_value")}
        return {k: str(v) for k, v in found.items() if v is not None}

    def require_model_spec(self) -> str:
        if self.model_spec is None:
            raise ConfigError(f"run {self.run_id!r} did not store its task model's spec (an object, or a URL holding "
                              f"credentials, which prompthone never writes down): pass it with --model")
        return self.model_spec


def found_prompt(run: str | Path, *, store: str | Path | RunStore | None = None,
                 runs_dir: str | Path = "runs") -> FoundPrompt:
    """The found prompt of `run`: a run directory, its result.json, or an id of the store under `runs_dir`."""
    path = Path(run)
    if path.name == "result.json" and path.is_file():
        path = path.parent
    if path.is_dir():
        data = RunData.from_run_dir(path)
    else:
        from prompthone.report.from_store import run_data_from_store
        from prompthone.run.driver import open_store

        with open_store(store, runs_dir) as db:
            data = run_data_from_store(db, str(run))
    if not data.result or not isinstance(data.result.get("best_prompt"), dict):
        raise InputError(f"run {data.run_id!r} has no found prompt yet (status {data.status}): export a finished "
                         f"run", path=str(run))
    config = RunConfig.from_dict(data.config)
    task = task_from_rows(config.task, data.examples)
    scoring = config.scoring_mode or ("labels" if task.labels else "generate")
    return FoundPrompt(data.run_id, Prompt.from_dict(data.result["best_prompt"]), task, scoring, config.model_spec,
                       config.cache, data.result, data.path)
