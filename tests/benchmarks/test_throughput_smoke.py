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


def test_the_section_is_written_from_the_raw_file_alone(tmp_path: Path) -> None:
    """`--from-raw` rewrites the RESULTS.md section from a raw file (the committed one, in the repository) with
    the command that made it and its numbers, without running anything."""
    from benchmarks.throughput import main

    raw = {"in_flight": 64, "latency_s": 0.1, "quick": False, "failures": [],
           "command": "python -m benchmarks.throughput", "versions": "prompthone 0.1.0", "commit": "abc123",
           "simulated": {"requests": 3000, "in_flight": 64, "load_generator_per_s": 550.0,
                         "prompthone_per_s": 545.0, "ratio": 0.991},
           "real": {"requests": 48, "in_flight": 8, "load_generator_per_s": 3.8, "prompthone_per_s": 3.7,
                    "ratio": 0.974},
           "memory": [{"examples": 1000, "rss_before_mb": 78.0, "peak_rss_mb": 89.0},
                      {"examples": 10000, "rss_before_mb": 81.0, "peak_rss_mb": 93.0}]}
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    results_md = tmp_path / "RESULTS.md"
    assert main(["--from-raw", "--raw", str(tmp_path / "raw.json"), "--results-md", str(results_md)]) == 0
    text = results_md.read_text()
    assert "Command: `python -m benchmarks.throughput` (source commit abc123)" in text
    assert "| 3,000 | 64 | 550.0 | 545.0 | 0.99× |" in text and "| 48 | 8 | 3.8 | 3.7 | 0.97× |" in text
    assert "| 10,000 | 81 | 93 |" in text
