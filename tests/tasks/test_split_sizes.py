"""Dev and test sizes a user chooses: counts or fractions, seeded, recorded with the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import prompthone as ph
from prompthone.cli import app
from prompthone.errors import ConfigError


def test_sizes_as_counts_and_fractions() -> None:
    task = ph.load_task("gen:sentiment_templates", limit=100, seed=3, test_size=60, dev_size=0.25)
    assert (len(task.train), len(task.dev), len(task.test)) == (15, 25, 60)
    again = ph.load_task("gen:sentiment_templates", limit=100, seed=3, test_size=60, dev_size=0.25)
    assert again == task  # the same seed and sizes: the same splits
    every = {e.key for split in ("train", "dev", "test") for e in task.split(split)}
    assert len(every) == 100  # nothing lost or counted twice
    only_test = ph.load_task("gen:sentiment_templates", limit=100, seed=3, test_size=70)
    assert (len(only_test.dev), len(only_test.test)) == (20, 70)  # dev keeps its default share


@pytest.mark.parametrize(("dev", "test", "message"), [
    (50, 50, "leave none for train"), (None, 0, "test_size must be a count"), (2.5, None, "whole number"),
    (None, -0.5, "test_size must be"),
])
def test_impossible_sizes_are_refused(dev: float | None, test: float | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ph.load_task("gen:sentiment_templates", limit=100, dev_size=dev, test_size=test)


def test_a_bad_size_at_the_command_line_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["eval", "--task", "gen:sentiment_templates", "--limit", "60",
                                      "--test-size", "0", "--no-cache"])
    assert result.exit_code == 2 and "test_size must be a count" in result.stderr
    assert "Traceback" not in result.output


def test_small_splits_are_warned_about_before_a_run(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from tests.fakes.fake_model import CountingModel

    task = ph.load_task("gen:sentiment_templates", limit=40, test_size=10, dev_size=8)
    ph.optimize(task, method="opro", model=CountingModel(), budget=30, run_dir=tmp_path,
                options={"steps": 1, "num_generated_instructions": 1}, cache=False, progress=False)
    warned = [r.getMessage() for r in caplog.records if "resolves differences" in r.getMessage()]
    assert len(warned) == 2 and "test split (10 examples" in warned[1] and "--test-size" in warned[1]
