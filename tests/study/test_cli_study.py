"""`prompthone study` input errors: one line naming the grid file and field, exit code 2, before any model loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(cwd / "cache"), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "prompthone.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, check=False)


@pytest.mark.parametrize(("text", "expected"), [
    ("openers: [null, 3]\n", "field 'openers[1]'"),
    ("openers: [a]\npersonas: [b]\n", "field 'personas'"),
    ("openers:\n  - a\n  - [b\n", "not valid YAML"),
])
def test_bad_grid_yaml_is_one_line_and_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    grid = tmp_path / "my-grid-with-a-rather-long-file-name-so-the-line-would-wrap-in-a-narrow-terminal.yaml"
    grid.write_text(text, encoding="utf-8")
    proc = _cli(["study", "--task", "gen:sentiment_templates", "--grid", str(grid), "--model", "gguf:/nope.gguf"],
                tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(grid) in lines[0] and expected in lines[0]
    assert not list(tmp_path.glob("runs/*"))  # nothing started


def test_unknown_method_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("openers: [null, You are smart.]\n", encoding="utf-8")
    proc = _cli(["study", "--task", "gen:sentiment_templates", "--grid", str(grid), "-M", "nope",
                 "--model", "gguf:/nope.gguf"], tmp_path)
    assert proc.returncode == 2 and "unknown method" in proc.stderr and "Traceback" not in proc.stderr
