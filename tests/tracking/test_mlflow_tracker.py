"""A real prompthone optimization (OPRO, deterministic fake model, real driver) logged to a file-based MLflow store
and read back with MLflow's own client: params, one metric point per step, final metrics, artifacts, statuses."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="needs the mlflow extra")

from mlflow.tracking import MlflowClient
from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _task

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.optimizers import get_method
from prompthone.run.driver import OptimizationResult, StepRecord, run_optimization
from prompthone.tracking import MlflowTracker
from prompthone.tracking.records import flatten

SECRET = "hunter2"


def _optimize(tmp: Path, tracker: MlflowTracker, extra: tuple[Any, ...] = ()) -> OptimizationResult:
    return run_optimization(_task(), get_method("opro").from_options(SMALL["opro"]), task_model=InstructionModel(),
                            budget=Budget(calls=150), seed=7, run_root=tmp / "runs", progress=False,
                            callbacks=[tracker.on_step, *extra])


@dataclass
class Logged:
    client: MlflowClient
    run: Any
    result: OptimizationResult
    run_dir: Path
    config: dict[str, Any]
    tmp: Path


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """One run, tracked as `api.optimize` would without a driver hook: steps as they come, then `start` with the
    run directory's id and config, then `finish`."""
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"file://{tmp}/mlruns"
    with MlflowTracker(uri) as tracker:
        result = _optimize(tmp, tracker)
        assert result.run_dir is not None
        run_dir = Path(result.run_dir)
        config = json.loads((run_dir / "config.json").read_text())
        tracker.start(run_dir.name, config)
        tracker.finish(result, "finished")
    client = MlflowClient(uri)
    assert tracker.mlflow_run_id is not None
    return Logged(client, client.get_run(tracker.mlflow_run_id), result, run_dir, config, tmp)


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list) else str(value)


def test_the_run_is_named_after_prompthones_run_and_finished(logged: Logged) -> None:
    run = logged.run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == logged.run_dir.name
    assert run.data.tags["prompthone.run_id"] == logged.run_dir.name
    assert run.data.tags["prompthone.version"] == logged.config["versions"]["prompthone"]
    assert run.data.tags["prompthone.stopped_reason"] == logged.result.stopped_reason
    experiment = logged.client.get_experiment(run.info.experiment_id)
    assert experiment.name == "prompthone"


def test_params_are_the_runs_config_flattened(logged: Logged) -> None:
    params = logged.run.data.params
    assert params["method"] == "opro"
    assert params["seed"] == "7"
    assert params["budget.calls"] == "150"
    assert params["scoring"] == "auto"
    assert params["task.name"] == "fake-sentiment"
    assert params["task_model"] == params["meta_model"] == "fake:instructions"
    assert params["task.labels"] == '["positive", "negative"]'
    for option, value in logged.result.options.items():  # every method option, not only the ones we set
        assert params[f"options.{option}"] == str(value)
    expected = {k: _param_text(v) for k, v in flatten(logged.config).items() if not k.startswith("versions.")}
    assert params == expected


def test_one_metric_point_per_step_as_in_steps_jsonl(logged: Logged) -> None:
    steps = [json.loads(line) for line in (logged.run_dir / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == logged.result.steps >= 2
    history = logged.client.get_metric_history(logged.run.info.run_id, "best_score")
    assert [(m.step, m.value) for m in history] == [(s["step"], s["best_score"]) for s in steps]
    for key in ("calls", "new_calls", "cache_hits", "tokens"):
        points = logged.client.get_metric_history(logged.run.info.run_id, key)
        assert [(m.step, m.value) for m in points] == [(s["step"], s["spend"][key]) for s in steps], key
    frontier = logged.client.get_metric_history(logged.run.info.run_id, "frontier_size")
    assert [m.value for m in frontier] == [len(s["frontier"]) for s in steps]
    assert len(logged.client.get_metric_history(logged.run.info.run_id, "elapsed_s")) == len(steps)


def test_final_metrics_are_the_results(logged: Logged) -> None:
    metrics, result = logged.run.data.metrics, logged.result
    for key in ("best_dev_score", "seed_dev_score", "test_score", "seed_test_score"):
        assert not math.isnan(getattr(result, key))
        assert metrics[key] == pytest.approx(getattr(result, key))
    assert metrics["final_calls"] == result.final_spend["calls"]


def test_artifacts_hold_the_best_prompt_and_the_result(logged: Logged) -> None:
    run_id, result = logged.run.info.run_id, logged.result
    names = {f.path for f in logged.client.list_artifacts(run_id)}
    assert names == {"best_prompt.json", "best_prompt.txt", "result.json"}
    out = logged.tmp / "downloaded"
    out.mkdir()

    def read(name: str) -> str:
        return Path(logged.client.download_artifacts(run_id, name, str(out))).read_text(encoding="utf-8")

    assert json.loads(read("best_prompt.json")) == result.best_prompt.to_dict()
    assert json.loads(read("result.json")) == json.loads(json.dumps(result.to_dict(), default=str))
    text = read("best_prompt.txt")
    assert f"# Instruction\n{result.best_prompt.instruction}\n" in text
    assert "# System\n(none)" in text and "# Output format" in text


def _config_with_secrets() -> dict[str, Any]:
    spec = f"openai:https://user:{SECRET}@llm.example/v1/qwen"
    return {"method": "opro", "options": {"steps": 4}, "seed": 1, "task_model": f"openai:https://user:{SECRET}@"
            "llm.example/v1#qwen", "meta_model": "fake:instructions", "task": {"instruction": "x" * 20000},
            "provenance": {"model": spec, "meta_model": f"http://h/v1?api_key={SECRET}"}}


def test_started_first_then_failed_inside_the_context_masks_every_secret(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/mlruns"

    def boom(record: StepRecord) -> None:
        if record.step == 2:
            raise RuntimeError(f"server https://user:{SECRET}@llm.example/v1 went away")

    with pytest.raises(RuntimeError, match="went away"), MlflowTracker(uri, experiment="e") as tracker:
        tracker.start("run-with-secrets", _config_with_secrets())
        _optimize(tmp_path, tracker, extra=(boom,))
    client = MlflowClient(uri)
    assert tracker.mlflow_run_id is not None
    run = client.get_run(tracker.mlflow_run_id)
    assert run.info.status == "FAILED"
    assert run.info.run_name == "run-with-secrets"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "calls")] == [1, 2]
    logged = [*run.data.params.values(), *run.data.tags.values()]
    assert not any(SECRET in value for value in logged)
    assert run.data.params["provenance.model"] == "openai:https://***@llm.example/v1/qwen"
    assert run.data.params["provenance.meta_model"] == "http://h/v1?api_key=***"
    assert run.data.tags["prompthone.error"] == "RuntimeError: server https://***@llm.example/v1 went away"
    assert len(run.data.params["task.instruction"]) < 20000  # cut to MLflow's limit, not refused


@pytest.mark.parametrize(("status", "mlflow_status"), [("finished", "FINISHED"), ("interrupted", "KILLED"),
                                                       ("failed", "FAILED")])
def test_finish_maps_prompthones_status(tmp_path: Path, status: str, mlflow_status: str,
                                        logged: Logged) -> None:
    uri = f"file://{tmp_path}/mlruns"
    with MlflowTracker(uri) as tracker:
        tracker.start("r", {"method": "opro"})
        tracker.finish(logged.result, status)
    assert tracker.mlflow_run_id is not None
    assert MlflowClient(uri).get_run(tracker.mlflow_run_id).info.status == mlflow_status


def test_ctrl_c_inside_the_context_ends_the_run_killed(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/mlruns"
    with pytest.raises(KeyboardInterrupt), MlflowTracker(uri) as tracker:
        tracker.start("r", {"method": "opro"})
        raise KeyboardInterrupt
    assert tracker.mlflow_run_id is not None
    assert MlflowClient(uri).get_run(tracker.mlflow_run_id).info.status == "KILLED"


def test_mlflow_prints_nothing_on_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                         logged: Logged) -> None:
    with MlflowTracker(f"file://{tmp_path}/mlruns") as tracker:
        tracker.start("r", _config_with_secrets())
        tracker.on_step(StepRecord(1, 0, 0.5, {"calls": 3}, 0.1, [0]))
        tracker.finish(logged.result)
    assert capfd.readouterr().out == ""


def test_a_tracking_failure_mid_run_is_a_warning_not_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = MlflowTracker(f"file://{tmp_path}/mlruns")
    tracker.start("r", {"method": "opro"})

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError(f"cannot reach https://u:{SECRET}@mlflow.example")

    monkeypatch.setattr(tracker._client, "log_batch", down)
    with caplog.at_level(logging.WARNING, logger="prompthone.tracking"):
        tracker.on_step(StepRecord(1, 0, 0.5, {"calls": 3}, 0.1, [0]))
    assert "could not log step 1" in caplog.text and SECRET not in caplog.text


def test_an_unusable_tracking_uri_fails_when_the_tracker_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--mlflow nosuch://\*\*\*@host/x: "):
        MlflowTracker(f"nosuch://me:{SECRET}@host/x")
