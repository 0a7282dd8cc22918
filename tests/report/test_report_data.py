"""Loading a run directory into RunData: last record wins, missing files, running runs, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.report.conftest import RUNS

from prompthone.errors import InputError
from prompthone.report import RunData


def test_finished_run_loads_every_file(run_data) -> None:
    run = run_data("apo")
    assert (run.run_id, run.status, run.path) == ("apo", "finished", RUNS / "apo")
    assert sorted(run.candidates) == [0, 1, 2, 3]
    assert run.candidates[0]["scores"] == {"bandit": 0.5, "dev": 0.5, "test": 0.5}  # the last line of id 0
    assert run.candidates[3]["scores"] == {"bandit": 0.25}
    assert len(run.steps) == 1 and run.events == [] and run.result is not None
    assert len(run.examples) == 10 and {e["split"] for e in run.examples} == {"train", "dev", "test"}
    # 4 dev + 4 test per candidate; a later line for the same (candidate, key, hash) replaces the earlier one
    assert len(run.evaluations) == 16
    overridden = [e for e in run.evaluations if e["candidate"] == 1 and e["key"] == "test"
                  and e["hash"] == next(x["hash"] for x in run.examples if x["split"] == "test" and x["index"] == 2)]
    assert [e["score"] for e in overridden] == [1.0]


def test_missing_optional_files_load_empty(run_data) -> None:
    run = run_data("gepa")
    assert run.examples == [] and run.evaluations == [] and run.status == "finished"
    assert run.candidates[3]["data"]["parents"] == [1, 2]


def test_running_run_without_result_skips_the_half_written_last_line(run_data) -> None:
    run = run_data("running")
    assert run.status == "running" and run.result is None
    assert sorted(run.candidates) == [0, 1, 2, 3]  # id 4 is still being appended


def test_run_json_status_wins_and_no_result_means_incomplete(tmp_path: Path) -> None:
    shutil.copytree(RUNS / "running", tmp_path / "r")
    (tmp_path / "r" / "run.json").write_text('{"status": "interrupted"}\n', encoding="utf-8")
    assert RunData.from_run_dir(tmp_path / "r").status == "interrupted"
    (tmp_path / "r" / "run.json").unlink()
    assert RunData.from_run_dir(tmp_path / "r").status == "incomplete"


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        RunData.from_run_dir(tmp_path / "missing")
    with pytest.raises(InputError, match=r"not a run directory: it has neither config\.json nor candidates\.jsonl"):
        RunData.from_run_dir(tmp_path)


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("candidates.jsonl", '{"id": 9, "parent": \n', "invalid JSON"),
    ("steps.jsonl", "[1, 2]\n", "expected a JSON object"),
    ("evaluations.jsonl", '{"candidate": "one", "key": "dev", "hash": "ab"}\n',
     "field 'candidate': expected an integer"),
    ("examples.jsonl", '{"split": "dev", "index": 0}\n', "field 'hash': expected a string"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, name: str, bad: str, message: str) -> None:
    run = tmp_path / "apo"
    shutil.copytree(RUNS / "apo", run)
    path = run / name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join([lines[0], bad, *lines[1:]]), encoding="utf-8")  # a bad line 2, complete lines after it
    with pytest.raises(InputError) as info:
        RunData.from_run_dir(run)
    assert info.value.path == str(path) and info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ") and message in str(info.value)


def test_malformed_json_file(tmp_path: Path) -> None:
    shutil.copytree(RUNS / "gepa", tmp_path / "g")
    (tmp_path / "g" / "result.json").write_text('{"method": "gepa",\n "steps": }', encoding="utf-8")
    with pytest.raises(InputError, match=r"result\.json:2: malformed JSON"):
        RunData.from_run_dir(tmp_path / "g")
