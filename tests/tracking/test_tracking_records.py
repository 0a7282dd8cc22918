"""What a tracker logs, without a tracker: masking, params from a config, metrics, the readable prompt.

These run on the core install; tests/tracking/test_mlflow_tracker.py checks the same things in a real MLflow store.
"""

from __future__ import annotations

import math
import sys

import pytest

from prompthone.errors import ConfigError
from prompthone.prompts.prompt import Prompt
from prompthone.run.results import OptimizationResult, StepRecord
from prompthone.tasks.example import Example
from prompthone.tracking.records import final_metrics, flatten, param_value, prompt_text, run_params, step_metrics
from prompthone.tracking.redact import mask_secrets, mask_tree


@pytest.mark.parametrize(("text", "masked"), [
    ("openai:https://user:pass@host/v1/model", "openai:https://***@host/v1/model"),
    ("openai:http://user@127.0.0.1:8000/v1#qwen", "openai:http://***@127.0.0.1:8000/v1#qwen"),
    ("openai:https://u:p@ss:w@rd@host/v1/m", "openai:https://***@host/v1/m"),  # an unescaped @ in the password
    ("postgresql://me:s3cret@db/runs and https://a:b@c/d", "postgresql://***@db/runs and https://***@c/d"),
    ("http://host/v1?api_key=sk-123&model=m", "http://host/v1?api_key=***&model=m"),
    ("http://host/v1?x=1&access_token=abc#frag", "http://host/v1?x=1&access_token=***#frag"),
])
def test_credentials_in_urls_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize("text", [
    "openai:https://api.openai.com/v1/gpt-4o-mini", "local", "fake:instructions", "e-mail me at a@b.org",
    "Classify the sentiment of the review.", "file:///tmp/mlruns", "http://host:8000/v1?model=m",
])
def test_text_without_credentials_is_left_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_mask_tree_masks_every_string_and_keeps_the_shape() -> None:
    data = {"a": ["https://u:p@h/x", 1, None], "b": {"c": ("http://h?token=t",)}, "n": 0.5}
    assert mask_tree(data) == {"a": ["https://***@h/x", 1, None], "b": {"c": ["http://h?token=***"]}, "n": 0.5}


def test_params_are_flat_dotted_masked_stringified_and_cut() -> None:
    config = {"method": "opro", "seed": 7, "options": {"steps": 4, "temperature": 1.0, "style": None},
              "task": {"name": "t", "labels": ["yes", "no"], "instruction": "x" * 9000},
              "task_model": "openai:https://user:hunter2@host/v1#m", "budget": {"calls": 100, "tokens": None},
              "provenance": {}, "flag": True, "versions": {"prompthone": "0.1.0"}}
    assert flatten(config["options"], "options.") == {"options.steps": 4, "options.temperature": 1.0,
                                                      "options.style": None}
    params = run_params(config, value_limit=500)
    assert params == {"method": "opro", "seed": "7", "options.steps": "4", "options.temperature": "1.0",
                      "options.style": "None", "task.name": "t", "task.labels": '["yes", "no"]',
                      "task.instruction": "x" * 499 + "…", "task_model": "openai:https://***@host/v1#m",
                      "budget.calls": "100", "budget.tokens": "None", "flag": "True"}
    assert len(param_value("y" * 10, 5)) == 5


def test_step_metrics_leave_out_a_missing_best_score() -> None:
    spend = {"calls": 12, "new_calls": 10, "cache_hits": 2, "tokens": 300, "by_role": {"task": 12}}
    record = StepRecord(step=3, best_id=None, best_score=None, spend=spend, elapsed_s=1.5, frontier=[0, 4])
    assert step_metrics(record) == {"calls": 12.0, "new_calls": 10.0, "cache_hits": 2.0, "tokens": 300.0,
                                    "frontier_size": 2.0, "elapsed_s": 1.5}
    record.best_score = 0.75
    assert step_metrics(record)["best_score"] == 0.75


def _result(**changes: object) -> OptimizationResult:
    prompt = Prompt("Say it.", system="You are terse.", demos=(Example("2+2", "4"),), output_format="A number.")
    data: dict[str, object] = dict(
        method="opro", task="t", best_prompt=prompt, seed_prompt=Prompt("Seed."), best_dev_score=0.8,
        seed_dev_score=0.5, test_score=float("nan"), seed_test_score=0.4, best_candidate_id=3,
        spend={"calls": 20}, final_spend={"calls": 9}, stopped_reason="budget", steps=2, n_candidates=4,
        wall_time_s=1.0)
    data.update(changes)
    return OptimizationResult(**data)  # type: ignore[arg-type]


def test_final_metrics_skip_nan_scores() -> None:
    metrics = final_metrics(_result())
    assert metrics == {"best_dev_score": 0.8, "seed_dev_score": 0.5, "seed_test_score": 0.4, "final_calls": 9.0}
    assert not any(math.isnan(v) for v in metrics.values())


def test_the_readable_prompt_has_every_part() -> None:
    text = prompt_text(_result().best_prompt)
    for part in ("# System\nYou are terse.", "# Instruction\nSay it.", "# Demos (1)\nInput: 2+2\nAnswer: 4",
                 "# Output format\nA number."):
        assert part in text
    assert "# System\n(none)" in prompt_text(Prompt("Only this."))


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from prompthone.tracking import MlflowTracker

    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` sees when it is not installed
    with pytest.raises(ConfigError) as info:
        MlflowTracker("file:///nowhere/mlruns")
    assert str(info.value) == "--mlflow needs the mlflow extra: pip install 'prompthone[mlflow]'"
