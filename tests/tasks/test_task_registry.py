"""load_task: spec dispatch, label and metric inference for files, overrides, limits, and list_tasks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from prompthone.errors import ConfigError, InputError
from prompthone.tasks import load_task
from prompthone.tasks.registry import infer_labels, list_tasks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_infer_labels_rule() -> None:
    assert infer_labels(["b", "a", "b", "a"]) == ("b", "a")
    assert infer_labels(["b", "a", "b"]) is None  # 'a' occurs once
    assert infer_labels([str(i) for i in range(11)] * 2) is None  # 11 distinct
    assert infer_labels(["1", "2", "1", "2"]) is None  # numeric answers are not labels


def test_sentiment_example_file() -> None:
    task = load_task(str(EXAMPLES / "sentiment.jsonl"))
    assert task.name == "sentiment"
    assert task.labels == ("positive", "negative")
    assert task.metric == "label_accuracy"
    assert task.instruction == "Classify the input as one of: positive, negative."
    assert task.output_format == "Answer with exactly one of: positive, negative."
    examples = task.train + task.dev + task.test
    assert len(examples) == 80
    assert sum(e.target == "positive" for e in examples) == 40
    assert (len(task.train), len(task.dev), len(task.test)) == (32, 16, 32)
    assert all(e.meta["id"].startswith("s") for e in examples)


def test_seeded_splits_and_limit() -> None:
    spec = str(EXAMPLES / "sentiment.jsonl")
    assert load_task(spec, seed=1) == load_task(spec, seed=1)
    assert load_task(spec, seed=1).train != load_task(spec, seed=2).train
    limited = load_task(spec, limit=10, seed=4)
    assert len(limited.train + limited.dev + limited.test) == 10
    with pytest.raises(ConfigError, match="limit must be at least 1"):
        load_task(spec, limit=0)


def test_numeric_and_text_files(tmp_path: Path) -> None:
    rows = [{"input": f"{i}+1", "target": str(i + 1)} for i in range(6)] + [{"input": "1+1?", "target": "2"}]
    numeric = write_jsonl(tmp_path / "math.jsonl", rows)
    task = load_task(str(numeric))
    assert (task.metric, task.labels, task.output_format) == ("numeric_match", None,
                                                              "Give the final answer as a number.")
    text = write_jsonl(tmp_path / "qa.jsonl", [{"input": f"q{i}", "target": f"a{i}"} for i in range(5)])
    task = load_task(str(text))
    assert (task.metric, task.labels, task.instruction, task.output_format) == (
        "exact_match", None, "Answer the question.", "")


def test_overrides(tmp_path: Path) -> None:
    rows = [{"text": f"x{i}", "y": "yes" if i % 2 else "no"} for i in range(6)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    task = load_task(str(path), input_field="text", target_field="y", instruction="Decide.",
                     output_format="Say yes or no.", metric="macro_f1")
    assert (task.instruction, task.output_format, task.metric) == ("Decide.", "Say yes or no.", "macro_f1")
    assert task.labels == ("no", "yes")
    assert load_task(str(path), input_field="text", target_field="y", metric="exact_match").labels is None
    explicit = load_task(str(path), input_field="text", target_field="y", labels=["yes", "no", "maybe"])
    assert explicit.labels == ("yes", "no", "maybe")
    with pytest.raises(ConfigError, match="unknown metric"):
        load_task(str(path), metric="f1")


def test_csv_and_json_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("input,target\na,yes\nb,no\nc,yes\nd,no\n", encoding="utf-8")
    assert load_task(str(csv_path)).labels == ("yes", "no")
    json_path = tmp_path / "t.json"
    json_path.write_text(json.dumps([{"input": "a", "target": "1"}, {"input": "b", "target": "2"}]))
    assert load_task(str(json_path)).metric == "numeric_match"


def test_bigbench_style_json_file(tmp_path: Path) -> None:
    examples = [{"input": f"q{i}", "target_scores": {"Yes": i % 2, "No": 1 - i % 2}} for i in range(8)]
    path = tmp_path / "my_task.json"
    path.write_text(json.dumps({"description": "Answer yes or no.", "examples": examples}))
    task = load_task(str(path))
    assert (task.name, task.labels, task.instruction) == ("my_task", ("Yes", "No"), "Answer yes or no.")


def test_generated_specs() -> None:
    task = load_task("gen:boolean_expressions", seed=2)
    assert task.name == "gen:boolean_expressions"
    assert task.labels == ("True", "False")
    assert len(task.train + task.dev + task.test) == 120
    # the data is fixed; the seed only changes the splits
    same_data = load_task("gen:boolean_expressions", seed=3)
    assert {e.input for e in task.test + task.dev + task.train} == {
        e.input for e in same_data.test + same_data.dev + same_data.train}
    assert len(load_task("gen:arithmetic", limit=30).train) == 12
    with pytest.raises(ConfigError, match="unknown generated task 'nope'; choose one of: arithmetic"):
        load_task("gen:nope")


def test_labels_override_on_generated_task() -> None:
    task = load_task("gen:sentiment_templates", labels=["Negative", "Positive"])
    assert task.labels == ("Negative", "Positive")
    assert {e.target for e in task.train} == {"Negative", "Positive"}
    with pytest.raises(ConfigError, match="is not one of the labels"):
        load_task("gen:sentiment_templates", labels=["good", "bad"])


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found") as info:
        load_task(str(tmp_path / "missing.jsonl"))
    assert info.value.path == str(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="file not found"):
        load_task("data/missing.txt")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"unsupported task file type '\.txt'"):
        load_task(str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigError, match="did you mean gen:arithmetic"):
        load_task("arithmetc")


def test_list_tasks() -> None:
    rows = dict(list_tasks())
    assert "gen:arithmetic" in rows and "bbh:<name>" in rows
    assert any(spec.endswith("sentiment.jsonl") and "80 lines" in text for spec, text in rows.items())
