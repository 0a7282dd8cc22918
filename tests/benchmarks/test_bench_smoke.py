"""The benchmark suite runs end to end at quick sizes and saves every section with finite numbers.

Only that it runs and what it writes are checked: timing is never asserted (the machine is shared, and a
ratio is the benchmark's output, not a test condition). A non-zero exit means a correctness failure the
benchmark itself detected, e.g. a cached re-run that called the model again.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("evaluator_overhead", "labels_vs_generate", "prefix_reuse", "cached_rerun")


def _numbers(value: Any) -> list[float]:
    """Every int/float in a nested JSON value (booleans excluded)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


def test_quick_benchmark_writes_all_sections(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    for section in SECTIONS:
        assert results.get(section), f"section {section} missing or empty"
        numbers = _numbers(results[section])
        assert numbers and all(math.isfinite(x) for x in numbers), section
    assert results["evaluator_overhead"]["generate"]["throughput_ratio"] > 0
    assert results["evaluator_overhead"]["labels"]["throughput_ratio"] > 0
    assert all(row["speed_ratio"] > 0 for row in results["labels_vs_generate"])
    assert all(row["within_1e-4"] for row in results["prefix_reuse"]["rows"])
    assert results["cached_rerun"]["second_new_calls"] == 0
    assert results["cached_rerun"]["same_result"] is True
    assert results["correctness_failures"] == []
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n|") >= 1 + len(SECTIONS)
