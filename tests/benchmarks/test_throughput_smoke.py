"""The throughput benchmark runs at quick sizes against its simulated server and writes finite numbers.

Only that it runs, that prompthone's predictions equal the server's answers (the benchmark's own correctness
check, exit 1 otherwise) and what it writes are checked; the ratios are its output, never a test condition.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_throughput_benchmark_writes_every_number(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.throughput", "--quick", "--no-real", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "throughput.json").read_text())
    assert results["failures"] == []
    sim = results["simulated"]
    assert sim["in_flight"] == 64 and sim["requests"] == 256
    assert sim["load_generator_per_s"] > 0 and sim["prompthone_per_s"] > 0 and sim["ratio"] > 0
    assert [row["examples"] for row in results["memory"]] == [200, 2000]
    assert all(row["peak_rss_mb"] >= row["rss_before_mb"] > 0 for row in results["memory"])
    assert "ratio" in proc.stdout and "peak RSS" in proc.stdout
