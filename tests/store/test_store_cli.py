"""The store's bad input at the command line: one line on stderr, exit code 2, no traceback, nothing changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.store import RunStore
from prompthone.store.migrate import VERSION_TABLE

runner = CliRunner()


def _fails(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in message
    return message


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_run_ids_name_the_store_and_recent_runs(tmp_path: Path) -> None:
    with RunStore.default(tmp_path) as store:
        store.create_run("20261129-000000-ape-t", method="ape", task="t", seed=0, config={})
    before = _digest(tmp_path / "prompthone.sqlite")
    message = _fails(["optimize", "--resume", "no-such-run", "--runs-dir", str(tmp_path)])
    assert "no run 'no-such-run'" in message and "20261129-000000-ape-t" in message
    assert _digest(tmp_path / "prompthone.sqlite") == before


def test_resume_refuses_task_options_and_a_finished_run(tmp_path: Path) -> None:
    assert "leave out --task, --budget" in _fails(["optimize", "--resume", "x", "--task", "gen:arithmetic",
                                                    "--budget", "5", "--runs-dir", str(tmp_path)])
    with RunStore.default(tmp_path) as store:
        run_id = store.create_run("done", method="ape", task="t", seed=0, config={})
        store.finish_run(run_id, "finished", {"best_dev_score": 0.5})
    assert "has finished; there is nothing to resume" in _fails(["optimize", "--resume", "done", "--runs-dir",
                                                                 str(tmp_path)])


def test_an_unreachable_store_and_a_newer_schema_are_one_line(tmp_path: Path) -> None:
    message = _fails(["runs", "--store", "postgresql://alice:hunter2@127.0.0.1:9/prompthone"])
    assert "hunter2" not in message and "127.0.0.1:9" in message
    path = tmp_path / "newer.sqlite"
    RunStore(path).close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    before = _digest(path)
    assert "newer than this prompthone" in _fails(["runs", "--store", str(path)])
    assert _digest(path) == before


def test_runs_lists_the_store_newest_first(tmp_path: Path) -> None:
    with RunStore.default(tmp_path) as store:
        for name in ("first", "second"):
            store.create_run(name, method="opro", task="gen:arithmetic", seed=1, config={})
        store.finish_run("first", "finished", {"best_dev_score": 0.75, "test_score": 0.5})
    result = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("second") < out.index("first") and "0.750" in out and "running" in out
