"""`auto`, the default method, end to end on the embedded models as a new user runs it: `prompthone optimize` with
no method and no meta model (SmolLM2-135M answers, Qwen2.5-Coder-1.5B proposes), and a gain that must be real.

SmolLM2-135M says "positive" to most reviews whatever they say (its label prior decides, see
test_calibration_e2e.py), so the seed prompt is near chance; a search over instructions, demos and calibrations
within 150 calls has to find a prompt that is better on the *test* split, by a margin its paired interval
resolves. A regression in the race, the calibration arms or the finalization breaks it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fakes.run_files import read_jsonl

pytestmark = pytest.mark.e2e

BUDGET = 150


def test_auto_is_the_default_and_finds_a_significantly_better_prompt(tmp_path: Path) -> None:
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "prompthone.cli", "optimize", "--task", "gen:sentiment_templates",
                          "--limit", "200", "--seed", "0", "--budget", str(BUDGET), "--runs-dir",
                          str(tmp_path / "runs"), "--quiet", "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    run_dir = Path(result["run_dir"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"] == "auto"
    assert "Qwen2.5-Coder-1.5B" in json.dumps(config), "the default meta model is the strongest embedded one"
    assert result["spend"]["calls"] <= BUDGET

    comparison = result["test_comparison"]
    assert comparison["significant"], comparison
    assert comparison["difference"] >= 0.2, comparison  # measured +0.47 at 300 task calls (benchmarks: quality)
    assert result["test_score"] > result["seed_test_score"]

    events = read_jsonl(run_dir / "events.jsonl")
    race = next(e for e in events if e["event"] == "race")
    rungs = [e for e in events if e["event"] == "rung"]
    assert rungs and race["arms"] == len(rungs[0]["arms"]) and race["arms"] >= 6
    assert rungs[-1]["size"] == race["sizes"][-1]
    assert any(a["kept"] for a in rungs[-1]["arms"])
    instructions = next(e for e in events if e["event"] == "instructions")["instructions"]
    assert len(instructions) >= 2, "the 1.5B meta model proposed no usable instruction"
