"""`ph.optimize(..., mlflow=URI)` and `ph.resume(..., mlflow=URI)`: the run is named after prompthone's run id before
its first step, every step is logged, and a bad tracking URI fails before any model call."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _task

import prompthone as ph
from prompthone.errors import ConfigError

mlflow = pytest.importorskip("mlflow")


def test_optimize_logs_to_mlflow_under_the_run_id(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/mlruns"
    model = InstructionModel()
    result = ph.optimize(_task(), method="opro", model=model, options=SMALL["opro"], seed=2, run_dir=tmp_path / "runs",
                         cache=False, progress=False, mlflow=uri, mlflow_experiment="api-test")
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("api-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == Path(result.run_dir or "").name and run.info.status == "FINISHED"
    assert run.data.params["method"] == "opro" and run.data.params["seed"] == "2"
    history = client.get_metric_history(run.info.run_id, "best_score")
    assert [m.step for m in history] == list(range(1, result.steps + 1))
    assert run.data.metrics["best_dev_score"] == pytest.approx(result.best_dev_score)


def test_a_bad_tracking_uri_fails_before_the_model_is_called(tmp_path: Path) -> None:
    model = InstructionModel()
    with pytest.raises(ConfigError, match="--mlflow"):
        ph.optimize(_task(), method="opro", model=model, options=SMALL["opro"], run_dir=tmp_path, cache=False,
                    progress=False, mlflow="nosuchscheme://x")
    assert model.calls == 0
