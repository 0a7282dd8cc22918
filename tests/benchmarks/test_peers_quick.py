"""The peer benchmark end to end at smoke size: every system (prompthone's and the peers') runs on the embedded
model behind the counting proxy, is counted within its budget, and has its final prompt scored on test.

Who wins is not checked: at this size it is noise. What is checked is that the harness is honest: every system
ran, each one's calls were counted at the proxy and stayed within the cap, no runner saw the test split.
The first run installs DSPy, TextGrad and promptolution from PyPI into benchmarks/.venvs (a few minutes, once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.peers.systems import SEED, SYSTEMS

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.peers]
ROOT = Path(__file__).resolve().parents[2]
#: one system of each package (each package has its own environment and runner): the whole harness path of every
#: package at a third of the time of all 13 systems (`make peers-quick` runs all). prompthone's methods run end to
#: end on the embedded model in tests/e2e; here the default one checks the harness's prompthone runner, including
#: the calibration its result carries.
CI_SYSTEMS = ["prompthone-auto", "dspy-copro", "textgrad", "promptolution-opro"]


def test_quick_peer_benchmark_runs_and_counts_every_system(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("matplotlib")
    assert set(CI_SYSTEMS) <= set(SYSTEMS)
    out = tmp_path / "peers"
    # --out relative to the working directory, as users type it; runners run elsewhere and must still find it.
    command = [sys.executable, "-m", "benchmarks.peers", "--quick", "--out", os.path.relpath(out, ROOT),
               "--systems", *CI_SYSTEMS]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_system = {r["system"]: r for r in records}
    assert set(by_system) == {SEED, *CI_SYSTEMS}
    for name in CI_SYSTEMS:
        record = by_system[name]
        assert 0 < record["calls"] <= record["budget"], record
        assert 0.0 <= record["test_score"] <= 1.0
        job = json.loads((Path(record["extra"]["run_dir"]) / "job.json").read_text())
        assert "test" not in job and job["budget_calls"] == record["budget"]
    assert (out / "peers.md").read_text().count("| prompthone-auto") >= 1
    assert list(out.glob("peers-*.png"))
