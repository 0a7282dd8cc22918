"""The shared task options: every task command has them, once, and they arrive as one TaskSource."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.cli_common import TaskSource, task_options
from prompthone.errors import InputError

SHARED = {"--task", "--input-field", "--target-field", "--labels", "--instruction", "--limit", "--cache", "--no-cache"}


@pytest.mark.parametrize("name", ["optimize", "compare", "eval", "study"])
def test_every_task_command_has_the_shared_options_once(name: str) -> None:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    flags = [flag for param in command.params for flag in param.opts]
    assert set(flags) >= SHARED
    assert len(flags) == len(set(flags)), "an option is declared twice"
    assert command.params[0].name == "task"  # first; required when the task is loaded (see below)


def test_the_options_arrive_as_one_task_source(tmp_path: Path) -> None:
    seen: list[TaskSource] = []
    probe = typer.Typer()

    @probe.command()
    @task_options
    def run(source: TaskSource, seed: int = 0) -> None:
        seen.append(source)

    result = CliRunner().invoke(probe, ["--task", "gen:sentiment_templates", "--labels", "positive, negative",
                                        "--limit", "12", "--cache", str(tmp_path / "c.sqlite"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    source = seen[0]
    assert source == TaskSource("gen:sentiment_templates", labels="positive, negative", limit=12,
                                cache_file=tmp_path / "c.sqlite")
    assert source.cache == tmp_path / "c.sqlite"
    assert TaskSource("x", no_cache=True, cache_file=tmp_path).cache is False and TaskSource("x").cache is True
    task = source.load(seed=3)
    assert task.labels == ("positive", "negative") and len(task.train) + len(task.dev) + len(task.test) == 12
    with pytest.raises(InputError, match="--task"):
        TaskSource().load(seed=0)
