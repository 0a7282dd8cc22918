"""The benchmark suite runs end to end (quick sizes) and writes every section; no timing assertions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_all_sections(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for section in ("evaluator_overhead", "labels_vs_generate", "prefix_reuse", "cached_rerun"):
        assert section in results
    assert results["cached_rerun"]["second_new_calls"] == 0
    assert results["cached_rerun"]["same_best_prompt"] is True
    assert math.isfinite(results["prefix_reuse"]["speedup"])
    assert math.isfinite(results["evaluator_overhead"]["labels"]["throughput_ratio"])
    assert (tmp_path / "results.md").read_text().count("\n") >= 6
