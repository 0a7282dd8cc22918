"""The GREATER benchmark runs at quick sizes: one invocation, each task in a subprocess of its own, rows with the
per-step cost and the task's own memory, and nothing written to RESULTS.md or the committed raw file.

Only that it runs and what it writes are checked; its scores and seconds are its output, never a test condition.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_quick_greater_benchmark_measures_one_task_in_its_own_process(tmp_path: Path) -> None:
    results_md, raw = tmp_path / "RESULTS.md", tmp_path / "greater.json"
    command = [sys.executable, "-m", "benchmarks.greater", "--quick", "--out", str(tmp_path / "out"),
               "--results-md", str(results_md), "--raw", str(raw)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| gen:sentiment_templates |" in proc.stdout and "GREATER RSS" in proc.stdout
    cost = proc.stdout.split("| gen:sentiment_templates | ")[-1].split("|")
    greater_rss, task_rss = (float(cell.strip().removesuffix(" MB")) for cell in cost[6:8])
    assert 0 < greater_rss <= task_rss  # the task's own process: GREATER first, then the llama.cpp baselines
    assert not results_md.exists() and not raw.exists()  # a quick run publishes nothing
