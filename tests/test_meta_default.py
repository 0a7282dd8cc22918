"""The meta model a run uses when none is named (`api.default_meta_model`): the strongest embedded instruct model
installed when the task model is an embedded spec; the task model itself otherwise; an explicit one always wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.optimizers.test_checkpoint_resume import InstructionModel

import prompthone.models.embedded as embedded
from prompthone.api import default_meta_model


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """What `strongest_installed_embedded` answers (set by the test)."""
    answer: list[str | None] = ["qwen-1.5b"]
    monkeypatch.setattr(embedded, "strongest_installed_embedded", lambda: answer[0])
    return answer


@pytest.mark.parametrize("model", [None, "local", "smollm2", "qwen-0.5b"])
def test_an_embedded_task_model_proposes_with_the_strongest_embedded_model(model: str | None,
                                                                          installed: list[str | None]) -> None:
    assert default_meta_model(model) == "qwen-1.5b"


@pytest.mark.parametrize("model", ["gguf:/models/x.gguf", "openai:http://127.0.0.1:8000/v1/m", "qwen-1.5b"])
def test_a_model_that_is_not_a_weaker_embedded_one_proposes_for_itself(model: str,
                                                                      installed: list[str | None]) -> None:
    assert default_meta_model(model) is None  # None: the task model is the meta model


def test_a_model_object_proposes_for_itself(installed: list[str | None]) -> None:
    assert default_meta_model(InstructionModel()) is None


def test_with_only_the_default_model_installed_it_proposes_for_itself(installed: list[str | None]) -> None:
    installed[0] = "local"
    assert default_meta_model("local") is None
    installed[0] = None
    assert default_meta_model("local") is None


def test_the_run_records_the_default_meta_model_and_an_explicit_one_wins(installed: list[str | None],
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path) -> None:
    import prompthone as ph
    import prompthone.api as api
    from prompthone.store import RunStore

    models = {"local": InstructionModel(), "qwen-1.5b": InstructionModel()}
    monkeypatch.setattr(api, "make_model", lambda spec: models[spec])
    monkeypatch.setattr(api, "_LOADED", {})
    task = ph.load_task("gen:sentiment_templates", limit=24)
    options = {"num_subsamples": 1, "num_prompts_per_subsample": 1, "eval_samples": 4, "mc_rounds": 0}
    for meta, recorded in ((None, "qwen-1.5b"), ("local", "local")):
        result = ph.optimize(task, "ape", "local", meta_model=meta, budget=40, options=options, run_dir=tmp_path,
                             cache=False, progress=False, calibration="none")
        with RunStore.default(tmp_path) as store:
            config = store.get_run(result.run_dir.rsplit("/", 1)[-1]).config  # type: ignore[union-attr]
        assert config["provenance"]["meta_model"] == recorded
        assert config["provenance"]["meta_is_task_model"] is (meta == "local")


def test_compare_says_which_meta_model_it_chose(embedded_fakes: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prompthone.cli import app

    ape = "ape:num_subsamples=1,num_prompts_per_subsample=1,eval_samples=4,mc_rounds=0"
    result = CliRunner().invoke(app, ["compare", "--task", "gen:sentiment_templates", "--limit", "30", "-M", "seed",
                                      "-M", ape, "--seeds", "1", "--budget", "20", "--no-cache",
                                      "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # rich wraps at 80 columns
    assert "meta model: qwen-1.5b (the strongest embedded model installed; --meta-model chooses another)" in said
    assert embedded_fakes["qwen-1.5b"].calls > 0 and embedded_fakes["local"].calls > 0
    [summary] = list(tmp_path.glob("*/compare.md"))
    assert "meta model fake:qwen-1.5b" in summary.read_text()
