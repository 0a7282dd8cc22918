"""`prompthone report` from a run directory or from the store by run id (a running run too); a run directory
edited by hand is one line naming the file and line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _task
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.optimizers import get_method
from prompthone.run.driver import run_optimization
from prompthone.store import RunStore

pytest.importorskip("plotly")
runner = CliRunner()


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    result = run_optimization(_task(), get_method("opro").from_options(SMALL["opro"]), task_model=InstructionModel(),
                              seed=4, run_root=tmp_path, progress=False)
    return Path(result.run_dir or "")


def test_report_from_a_run_directory_and_from_the_store(finished_run: Path, tmp_path: Path) -> None:
    by_dir = runner.invoke(app, ["report", str(finished_run)])
    assert by_dir.exit_code == 0, by_dir.output
    html = (finished_run / "report.html").read_text()
    assert "opro" in html and "<script" in html
    out = tmp_path / "elsewhere" / "r.html"
    by_id = runner.invoke(app, ["report", finished_run.name, "--runs-dir", str(tmp_path), "--out", str(out)])
    assert by_id.exit_code == 0, by_id.output
    assert out.is_file() and out.stat().st_size > 10_000


def test_a_running_run_in_the_store_gets_a_report(finished_run: Path, tmp_path: Path) -> None:
    with RunStore.default(tmp_path) as store:
        run_id = store.create_run("still-going", method="opro", task="fake-sentiment", seed=0,
                                  config=store.get_run(finished_run.name).config)
        for cand in list(store.candidates(finished_run.name).values())[:3]:
            store.record_candidate(run_id, cand)
        store.record_step(run_id, store.steps(finished_run.name)[0])
    result = runner.invoke(app, ["report", "still-going", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "still-going" / "report.html").is_file()


def test_a_hand_edited_run_directory_is_one_line_naming_file_and_line(finished_run: Path) -> None:
    path = finished_run / "candidates.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-5]  # a truncated record, as a hand edit or a full disk leaves it
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["report", str(finished_run)])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and f"{path}:2" in message


def test_an_unknown_run_id_is_one_line(tmp_path: Path) -> None:
    RunStore.default(tmp_path).close()
    result = runner.invoke(app, ["report", "nope", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no run 'nope'" in result.stderr
