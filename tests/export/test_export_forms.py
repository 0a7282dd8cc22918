"""Every export form carries the exact text prompthone sends (checked by rendering it back), its settings say how
answers are read, and `verify` finds the same predictions for a faithful export and different ones for a tampered
one (fake models: exact unit checks; tests/e2e/test_export_e2e.py runs the embedded model)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from prompthone.errors import InputError
from prompthone.export import FORMATS, export, read_back, verify_export
from prompthone.export.forms import dspy_state
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)
from prompthone.prompts.calibration import Calibration
from prompthone.prompts.prompt import Prompt, render
from prompthone.tasks.example import Example, Task

LABELS = ("positive", "negative")
TRICKY = "Rate it. Keep {{ braces }}, {% raw %}tags{% endraw %}, {input} and {{input}} as they are."


class HashModel:
    """Label scores and replies from a hash of the whole request: the same request, the same answer."""

    def __init__(self) -> None:
        self.id = "fake:hash"
        self.capabilities = Capabilities(generate=True, score=True, prefill=True)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            yield i, Completion(LABELS[zlib.crc32(repr(r.payload()).encode()) % 2] + " because", 10, 3)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            h = zlib.crc32(repr(r.payload()).encode())
            yield i, ContinuationScores((-float(h % 5), -float((h >> 3) % 5)), 10)

    def close(self) -> None:
        return None


def _task() -> Task:
    examples = [Example(f"review {i}: {'great' if i % 2 else 'awful'} {{{{x}}}}", LABELS[i % 2]) for i in range(30)]
    return Task("reviews", tuple(examples[:10]), tuple(examples[10:18]), tuple(examples[18:]), labels=LABELS,
                instruction="Rate it.", output_format="Answer positive or negative.")


PROMPTS = {
    "plain": Prompt("Rate it.", output_format="Answer positive or negative."),
    "everything": Prompt(TRICKY, system="You are {{ careful }}.", demos=(Example("nice {% x %}", "positive"),),
                         output_format="Answer positive or negative.", instruction_position="after",
                         calibration=Calibration("batch", LABELS, (-0.2, -1.7), 32), answer_prefix="Verdict:",
                         reasoning_tokens=8),
}


@pytest.mark.parametrize("form", ["openai", "jinja", "promptfoo"])
@pytest.mark.parametrize("which", list(PROMPTS))
def test_a_written_form_renders_back_to_what_prompthone_sends(form: str, which: str, tmp_path: Path) -> None:
    prompt, task = PROMPTS[which], _task()
    result = export(prompt, form, task, out_dir=tmp_path)
    assert result.renderer is not None and all(path.is_file() for path in result.files.values())
    for e in task.test:
        assert result.renderer(e.input) == render(prompt, e.input)
    assert result.settings["labels"] == list(LABELS) and result.settings["scoring"] == "labels"
    if which == "everything":
        assert result.settings["calibration"]["log_prior"] == [-0.2, -1.7]
        assert (result.settings["answer_prefix"], result.settings["reasoning_tokens"]) == ("Verdict:", 8)
        text = " ".join(result.notes)
        assert "prior" in text and "two calls" in text and "'Verdict:'" in text


@pytest.mark.parametrize("which", list(PROMPTS))
def test_verify_finds_a_faithful_export_equivalent_and_a_tampered_one_not(which: str, tmp_path: Path) -> None:
    prompt, task = PROMPTS[which], _task()
    for form in ("openai", "jinja", "promptfoo"):
        checked = verify_export(export(prompt, form, task, out_dir=tmp_path / form), prompt, task, HashModel())
        assert checked.equivalent and checked.n == len(task.test) and checked.score_export == checked.score_prompthone
    written = export(prompt, "openai", task, out_dir=tmp_path / "tampered")
    path = written.files["messages"]
    document = json.loads(path.read_text())
    document["messages"][-1]["content"] = document["messages"][-1]["content"].replace("Rate it.", "Rate it!")
    path.write_text(json.dumps(document))
    checked = verify_export(read_back(written), prompt, task, HashModel())  # what the edited file now says
    assert not checked.equivalent and checked.differing and "DIFFERENT predictions" in checked.describe()


def test_promptfoo_config_has_the_test_split_as_cases_and_a_server_as_provider(tmp_path: Path) -> None:
    task = _task()
    result = export(PROMPTS["plain"], "promptfoo", task, out_dir=tmp_path,
                    model_spec="openai:http://host:8000/v1/my-model")
    config = yaml.safe_load(result.files["config"].read_text())
    assert config["prompts"] == ["file://prompt.json"]
    assert config["providers"][0]["id"] == "openai:chat:my-model"
    assert config["providers"][0]["config"]["apiBaseUrl"] == "http://host:8000/v1"
    assert [t["vars"]["input"] for t in config["tests"]] == [e.input for e in task.test]
    assert all(t["assert"][0]["type"] == "javascript" for t in config["tests"])
    local = yaml.safe_load(export(PROMPTS["plain"], "promptfoo", task, out_dir=tmp_path / "l",
                                  model_spec="local").files["config"].read_text())
    assert local["providers"][0]["id"] == "openai:chat:YOUR-MODEL"


def test_dspy_state_is_what_a_dspy_predict_loads(tmp_path: Path) -> None:
    prompt = PROMPTS["everything"]
    state = json.loads(export(prompt, "dspy", _task(), out_dir=tmp_path).files["state"].read_text())
    assert state == dspy_state(prompt, _task())
    assert set(state) == {"traces", "train", "demos", "signature", "lm"}  # DSPy's Predict.dump_state keys
    assert state["demos"] == [{"input": "nice {% x %}", "answer": "positive"}]
    assert TRICKY in state["signature"]["instructions"] and len(state["signature"]["fields"]) == 2


def test_an_unknown_format_is_an_input_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format 'yaml'") as info:
        export(PROMPTS["plain"], "yaml", _task(), out_dir=tmp_path)
    assert info.value.field == "--format" and set(FORMATS) == {"openai", "jinja", "promptfoo", "dspy", "mlflow"}


def test_mlflow_registers_the_messages_and_verify_reads_the_registry_copy(tmp_path: Path) -> None:
    prompt, task = PROMPTS["plain"], _task()
    result = export(prompt, "mlflow", task, out_dir=tmp_path, mlflow=f"file://{tmp_path}/mlruns", name="reviews",
                    tags={"prompthone.run_id": "r1", "prompthone.test_ci95": "[0.1, 0.3]"})
    assert result.registered == "prompts:/reviews/1"
    assert verify_export(result, prompt, task, HashModel()).equivalent
    import mlflow

    loaded = mlflow.genai.load_prompt("prompts:/reviews/1")
    assert loaded.tags["prompthone.run_id"] == "r1" and json.loads(loaded.tags["prompthone.settings"])["labels"]
    named = replace(task, name="gen:sentiment templates")  # a task spec: characters MLflow refuses in a name
    assert export(prompt, "mlflow", named, out_dir=tmp_path, mlflow=f"file://{tmp_path}/mlruns").registered == (
        "prompts:/prompthone-gen-sentiment-templates/1")


def test_the_found_prompt_of_a_run_directory_or_its_result_json_with_its_tags(tmp_path: Path) -> None:
    from tests.fakes.fake_model import CountingModel, ReplyingModel

    from prompthone.export.source import found_prompt
    from prompthone.optimizers.opro import OPRO
    from prompthone.run.driver import run_optimization

    meta = ReplyingModel(lambda text, n: f"<START>Rate it, variant {n}.<END>")
    result = run_optimization(_task(), OPRO(steps=1, num_generated_instructions=1, score_examples=2),
                              task_model=CountingModel(), meta_model=meta, run_root=tmp_path, progress=False)
    run_dir = Path(result.run_dir or "")
    found = found_prompt(run_dir / "result.json")
    assert found.prompt == result.best_prompt and found.task.test == _task().test and found.scoring == "labels"
    tags = found.tags()
    assert tags["prompthone.run_id"] == run_dir.name and tags["prompthone.method"] == "opro"
    low, high = (result.test_comparison or {})["low"], (result.test_comparison or {})["high"]
    assert tags["prompthone.test_ci95"] == f"[{low:.4f}, {high:.4f}]"
    (run_dir / "result.json").unlink()
    with pytest.raises(InputError, match="has no found prompt yet"):
        found_prompt(run_dir)
