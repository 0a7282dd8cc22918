"""BIG-bench loading: a tiny synthetic sdist with the real layout, plus one real (marked) download test."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import ConfigError, PrompthoneError
from prompthone.tasks import bigbench
from prompthone.tasks.bigbench import list_bigbench, load_bigbench, task_from_json

ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"
# Captured at import, before the autouse fixture in tests/conftest.py points the cache at a temp dir: the
# real BIG-bench test must use the user's cache so the 358 MB sdist is downloaded once, not on every run.
USER_CACHE_DIR = os.environ.get("PROMPTHONE_CACHE_DIR")


def choice_task(n: int = 20) -> dict[str, Any]:
    examples = [{"input": f"walk {i}", "target_scores": {"True": i % 2, "False": 1 - i % 2}, "kind": "k"}
                for i in range(n)]
    return {"name": "navigate", "description": "Go back?", "task_prefix": "Do you return?",
            "examples": examples}


def counting_task(n: int = 12) -> dict[str, Any]:
    words = ["zero", "one", "two", "three"]
    examples = [{"input": f"count {i}", "target": [words[i % 4], str(i % 4)]} for i in range(n)]
    return {"name": "object_counting", "description": "Count the objects", "examples": examples}


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def build_sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        add_file(archive, f"{ROOT}/navigate/task.json", json.dumps(choice_task()).encode())
        add_file(archive, f"{ROOT}/object_counting/task.json", json.dumps(counting_task()).encode())
        add_file(archive, f"{ROOT}/logic/task.json", json.dumps({"name": "logic"}).encode())
        add_file(archive, f"{ROOT}/logic/three_objects/task.json", json.dumps(choice_task(9)).encode())
        add_file(archive, f"{ROOT}/huge/task.json", b"{" + b" " * 5000 + b"}")
        add_file(archive, f"{ROOT}/navigate/README.md", b"# not a task")
        add_file(archive, f"{ROOT}/programmatic/task.py", b"print('no')")
        add_file(archive, "bigbench-1.0.0/setup.py", b"")
    return path


@pytest.fixture
def fake_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Point the cache at tmp_path and make fetching return a synthetic sdist; records each fetch."""
    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(bigbench, "MAX_TASK_BYTES", 4000)
    sdist = build_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    fetched: list[Path] = []

    def fetch(target_dir: Path) -> Path:
        fetched.append(target_dir)
        return sdist

    monkeypatch.setattr(bigbench, "fetch_sdist", fetch)
    return fetched


def test_extracts_once_then_reads_cache(fake_sdist: list[Path], tmp_path: Path) -> None:
    assert list_bigbench() == []  # nothing cached, nothing downloaded
    task = load_bigbench("navigate", seed=1)
    assert len(fake_sdist) == 1
    assert list_bigbench() == ["logic", "logic/three_objects", "navigate", "object_counting"]
    index = json.loads((tmp_path / "cache" / "bigbench" / "index.json").read_text())
    assert index["tasks"]["logic/three_objects"] == "logic/three_objects/task.json"
    assert task.name == "bigbench:navigate"
    assert task.labels == ("True", "False")
    assert task.metric == "label_accuracy"
    assert task.instruction == "Do you return?"
    assert task.output_format == "Answer with exactly one of: True, False."
    assert (len(task.train), len(task.dev), len(task.test)) == (8, 4, 8)
    assert all(e.meta["kind"] == "k" and e.meta["source"] == "bigbench:navigate" for e in task.train)
    load_bigbench("object_counting")
    assert len(fake_sdist) == 1


def test_subtask_names_and_parent_without_examples(fake_sdist: list[Path]) -> None:
    assert load_bigbench("logic/three_objects").name == "bigbench:logic/three_objects"
    assert load_bigbench("logic_three_objects").name == "bigbench:logic/three_objects"
    assert load_bigbench("logic:three_objects").name == "bigbench:logic/three_objects"
    with pytest.raises(ConfigError, match="no examples of its own; choose a subtask: logic/three_objects"):
        load_bigbench("logic")


def test_unknown_name_suggests_close_matches(fake_sdist: list[Path]) -> None:
    with pytest.raises(ConfigError, match="unknown BIG-bench task 'navigat'; did you mean: navigate"):
        load_bigbench("navigat")
    with pytest.raises(ConfigError, match="gen:boolean_expressions"):
        load_bigbench("boolean_expressions")


def test_numeric_alternative_and_limit(fake_sdist: list[Path]) -> None:
    task = load_bigbench("object_counting", limit=5, seed=3)
    assert task.metric == "numeric_match"
    assert task.labels is None
    assert task.instruction == "Count the objects"
    examples = task.train + task.dev + task.test
    assert len(examples) == 5
    assert all(e.target in {"0", "1", "2", "3"} and len(e.meta["targets"]) == 2 for e in examples)
    assert load_bigbench("object_counting", limit=5, seed=3) == task


def test_letter_options_for_per_example_choices() -> None:
    examples = [{"input": f"q{i}", "target_scores": {f"c{i}a": 0, f"c{i}b": 1, f"c{i}c": 0}}
                for i in range(6)]
    task = task_from_json({"description": "d", "examples": examples}, "mc")
    assert task.labels == ("(A)", "(B)", "(C)")
    assert task.output_format == "Answer with the letter of the correct option: (A), (B), (C)."
    example = next(e for e in task.train + task.dev + task.test if e.meta["index"] == 0)
    assert example.input == "q0\nOptions:\n(A) c0a\n(B) c0b\n(C) c0c"
    assert example.target == "(B)"


def test_text_targets_and_unusable_examples() -> None:
    data = {"description": "d", "examples": [
        {"input": "a", "target": "x y"}, {"input": "b", "target": ["z", "w"]}, {"input": "", "target": "q"},
        {"input": "c", "target": []}, {"input": "d", "target_scores": {"p": 1, "q": 0}}]}
    task = task_from_json(data, "gen")
    assert task.metric == "exact_match"
    assert sorted(e.target for e in task.train + task.dev + task.test) == ["p", "x y", "z"]
    with pytest.raises(ConfigError, match="no usable examples"):
        task_from_json({"examples": [{"input": "a"}]}, "empty")


def test_shared_large_choice_set_stays_classification() -> None:
    colors = [f"color{i}" for i in range(15)]
    examples = [{"input": f"q{i}", "target_scores": {c: int(c == colors[i]) for c in colors}}
                for i in range(15)]
    task = task_from_json({"description": "d", "examples": examples}, "colors")
    assert task.labels == tuple(colors)


def test_fetch_falls_back_to_an_older_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTHONE_BIGBENCH_SDIST", raising=False)
    monkeypatch.setattr(bigbench, "_pip_can_download", lambda: True)
    monkeypatch.setattr(bigbench, "_pip_download", lambda target_dir: "exit code 1: refused")

    def older(target_dir: Path) -> None:
        (target_dir / bigbench.SDIST_FILENAME).write_bytes(b"tar")

    monkeypatch.setattr(bigbench, "_older_pip_download", older)
    assert bigbench.fetch_sdist(tmp_path).read_bytes() == b"tar"
    monkeypatch.setattr(bigbench, "_older_pip_download", lambda target_dir: pytest.fail("downloaded twice"))
    assert bigbench.fetch_sdist(tmp_path).name == "bigbench-1.0.0.tar.gz"


def test_fetch_failure_is_one_actionable_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTHONE_BIGBENCH_SDIST", raising=False)
    monkeypatch.setattr(bigbench, "_pip_can_download", lambda: False)
    monkeypatch.setattr(bigbench, "_older_pip_download", lambda target_dir: "could not fetch pip<26.3")
    with pytest.raises(bigbench.PrompthoneError, match="PROMPTHONE_BIGBENCH_SDIST"):
        bigbench.fetch_sdist(tmp_path)


def test_fetch_uses_local_sdist_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "mine.tar.gz"
    local.write_bytes(b"x")
    monkeypatch.setenv("PROMPTHONE_BIGBENCH_SDIST", str(local))
    assert bigbench.fetch_sdist(tmp_path / "sdist") == local
    monkeypatch.setenv("PROMPTHONE_BIGBENCH_SDIST", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(ConfigError, match="is not a file"):
        bigbench.fetch_sdist(tmp_path / "sdist")


@pytest.mark.bigbench
def test_real_navigate_and_object_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    if USER_CACHE_DIR:
        monkeypatch.setenv("PROMPTHONE_CACHE_DIR", USER_CACHE_DIR)
    else:
        monkeypatch.delenv("PROMPTHONE_CACHE_DIR", raising=False)
    navigate = load_bigbench("navigate")
    assert navigate.labels == ("True", "False")
    assert len(navigate.train) + len(navigate.dev) + len(navigate.test) > 100
    counting = load_bigbench("object_counting")
    assert counting.metric == "numeric_match"
    assert all(e.target.isdigit() for e in counting.train)
    assert len(counting.train) + len(counting.dev) + len(counting.test) > 100


def test_corrupt_sdist_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "bigbench-1.0.0.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    monkeypatch.setattr(bigbench, "fetch_sdist", lambda target_dir: broken)
    with pytest.raises(PrompthoneError, match=r"is not a readable tar\.gz"):
        load_bigbench("navigate")
