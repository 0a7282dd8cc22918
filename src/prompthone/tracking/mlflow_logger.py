"""Log a prompthone optimization run to MLflow: its params, its metrics per step and the best prompt as artifacts.

For teams that already keep their experiments in MLflow (`--mlflow <tracking uri>`). prompthone's run store stays
the source of truth (resume, export, report); MLflow gets a copy to compare runs next to the rest of their work.
The client comes from the `mlflow` extra (mlflow-skinny: the client without the server) and is imported only
when a tracker is made, so the core install never needs it.

Logging is best effort once the tracker exists: a tracking server that fails in the middle of a run costs a warning
and a gap in MLflow, never the optimization (whose every step is in the run store anyway). A tracking URI that
cannot be used fails at once, when the tracker is made, before any model call is paid for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from prompthone._version import __version__
from prompthone.errors import ConfigError
from prompthone.tracking.records import cut, final_metrics, prompt_text, run_params, step_metrics, to_json
from prompthone.tracking.redact import mask_secrets, mask_tree

if TYPE_CHECKING:
    from prompthone.run.config import RunConfig
    from prompthone.run.results import OptimizationResult, StepRecord

log = logging.getLogger(__name__)

MISSING_EXTRA = "--mlflow needs the mlflow extra: pip install 'prompthone[mlflow]'"
#: prompthone's end states (the run store's, plus the driver's stop reasons) as MLflow run statuses.
STATUSES = {"finished": "FINISHED", "budget": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
BATCH = 100  # MLflow takes at most 100 params (and 100 tags) per log_batch call


def _import_mlflow() -> Any:
    """The mlflow module, or the error that says how to install it."""
    try:
        import mlflow
        import mlflow.entities
        import mlflow.exceptions
        import mlflow.tracking
    except ImportError as exc:
        raise ConfigError(MISSING_EXTRA) from exc
    return mlflow


def _limit(name: str, default: int) -> int:
    """One of MLflow's length limits (they grew between versions: params took 500 characters before 2.x's 6000)."""
    with contextlib.suppress(ImportError, AttributeError):
        from mlflow.utils import validation

        return int(getattr(validation, name))
    return default


def _reason(exc: BaseException) -> str:
    """An exception's first line, masked (MLflow's messages can be pages long and may quote the URI)."""
    text = mask_secrets(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's own output kept off stdout, which `--json` owns: no info lines, no warnings, prints to stderr.

    MLflow logs to stderr already; this also drops its info chatter (`Creating initial MLflow database tables`)
    unless the user set `MLFLOW_LOGGING_LEVEL`, ignores its warnings and sends anything it prints to stderr.
    """
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        mlflow_log.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        mlflow_log.setLevel(level)


class MlflowTracker:
    """One prompthone run as one MLflow run, named after prompthone's run id.

    Pass `on_step` as a driver callback, call `start` with the run's id and config and `finish` with the result.
    `start` may also come after steps (the run is made on first use and named by `start`). Used as a context
    manager, an exception ends the MLflow run FAILED (KILLED for Ctrl-C) with the error in tag `prompthone.error`.

    Every logged value is masked (`tracking.redact`): a model spec with credentials in its URL never reaches the
    tracking server in clear. API keys live only in the environment and are never read here.
    """

    def __init__(self, tracking_uri: str, experiment: str = "prompthone") -> None:
        self._mlflow = _import_mlflow()
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.mlflow_run_id: str | None = None
        self.ended = False
        self._param_limit = _limit("MAX_PARAM_VAL_LENGTH", 500)
        self._tag_limit = _limit("MAX_TAG_VAL_LENGTH", 5000)
        self._warned = False
        if urlparse(tracking_uri).scheme in ("", "file"):
            # MLflow 3 keeps its file store only behind this switch; a user who names a file store wants one.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            with quiet():
                self._client = self._mlflow.tracking.MlflowClient(tracking_uri)
                self._experiment_id = self._experiment_id_for(experiment)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"--mlflow {mask_secrets(tracking_uri)}: {_reason(exc)}") from exc

    def _experiment_id_for(self, name: str) -> str:
        """The experiment's id, made when missing (another process making it at the same time is fine)."""
        found = self._client.get_experiment_by_name(name)
        if found is None:
            try:
                return str(self._client.create_experiment(name))
            except self._mlflow.exceptions.MlflowException:
                found = self._client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment {name!r} is deleted: restore it or choose another with a new name")
        return str(found.experiment_id)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.ended or self.mlflow_run_id is None:
            return
        if exc is None:
            self._end("FINISHED")
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        error = cut(mask_secrets(f"{type(exc).__name__}: {exc}"), self._tag_limit)
        with self._guard("the error"):
            self._client.set_tag(self.mlflow_run_id, "prompthone.error", error)
        self._end(status)

    def start(self, run_id: str, config: RunConfig | dict[str, Any]) -> None:
        """Name the MLflow run after prompthone's `run_id` and log the run's `config` (a `RunConfig`, or its stored
        dictionary form) as params and tags."""
        if not isinstance(config, dict):
            config = config.to_dict()
        versions = config.get("versions") or {}
        tags = {"prompthone.run_id": run_id, "prompthone.version": str(versions.get("prompthone", __version__)),
                "prompthone.method": str(config.get("method", ""))}
        if "python" in versions:
            tags["prompthone.python"] = str(versions["python"])
        params = list(run_params(config, value_limit=self._param_limit).items())
        entities = self._mlflow.entities
        with self._guard("the run's params"):
            if self.mlflow_run_id is None:
                self._create_run(run_name=mask_secrets(run_id))
            else:
                self._client.update_run(self.mlflow_run_id, name=mask_secrets(run_id))
            tag_list = [entities.RunTag(k, cut(mask_secrets(v), self._tag_limit)) for k, v in tags.items()]
            for i in range(0, max(len(params), 1), BATCH):
                self._client.log_batch(self.mlflow_run_id, params=[entities.Param(k, v) for k, v in
                                                                    params[i:i + BATCH]],
                                       tags=tag_list if i == 0 else [])

    def on_step(self, record: StepRecord) -> None:
        """Log one step's metrics (best score so far, calls, new calls, cache hits, tokens, frontier, time)."""
        metrics = step_metrics(record)
        with self._guard(f"step {record.step}"):
            self._log_metrics(metrics, record.step)

    def finish(self, result: OptimizationResult, status: str = "finished") -> None:
        """Log the final scores and the best prompt (JSON and text) and `result.json`, then end the MLflow run.

        `status`: `finished` (or `budget`) → FINISHED, `interrupted` → KILLED, `failed` → FAILED.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, got {status!r}")
        with self._guard("the result"):
            self._log_metrics(final_metrics(result), result.steps)
            assert self.mlflow_run_id is not None
            self._client.set_tag(self.mlflow_run_id, "prompthone.stopped_reason", result.stopped_reason)
            for name, text in (("best_prompt.json", to_json(mask_tree(result.best_prompt.to_dict()))),
                               ("best_prompt.txt", mask_secrets(prompt_text(result.best_prompt))),
                               ("result.json", to_json(mask_tree(result.to_dict())))):
                self._client.log_text(self.mlflow_run_id, text, name)
        self._end(STATUSES[status])

    def _create_run(self, run_name: str | None = None) -> None:
        run = self._client.create_run(self._experiment_id, run_name=run_name,
                                      tags={"prompthone.version": __version__})
        self.mlflow_run_id = str(run.info.run_id)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.mlflow_run_id is None:
            self._create_run()
        stamp = int(time.time() * 1000)
        self._client.log_batch(self.mlflow_run_id, metrics=[
            self._mlflow.entities.Metric(key, value, stamp, step) for key, value in metrics.items()])

    def _end(self, status: str) -> None:
        if self.ended:
            return
        if self.mlflow_run_id is not None:
            with self._guard(f"the end of the run ({status})"):
                self._client.set_terminated(self.mlflow_run_id, status)
        self.ended = True

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Run MLflow calls quietly; a failure is a warning (the first one; the rest at debug level), not a crash."""
        try:
            with quiet():
                yield
        except Exception as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "MLflow (%s) could not log %s: %s", mask_secrets(self.tracking_uri), what, _reason(exc))
