"""Calibrated label scoring on the embedded model: a calibrated seed prompt beats the uncalibrated one where the
model has a strong label bias, and a calibrated run's found prompt keeps its prior through result.json and `eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import prompthone as ph
from prompthone.evaluation.statistics import compare_results

pytestmark = pytest.mark.e2e


def test_a_calibrated_seed_prompt_beats_the_uncalibrated_one(embedded_model, tmp_path: Path) -> None:
    # SmolLM2-135M answers "positive" to most reviews whatever they say: its label prior, not the input, decides.
    task = ph.load_task("gen:sentiment_templates", seed=0, limit=200)
    cache = tmp_path / "c.sqlite"
    raw = ph.evaluate(task, None, embedded_model, split="test", cache=cache)
    predicted = [r.prediction for r in raw.examples]
    assert max(predicted.count(label) for label in task.labels or ()) >= 0.7 * len(predicted)  # the bias
    for calibration in ("contextual", "batch"):
        calibrated = ph.evaluate(task, None, embedded_model, split="test", cache=cache, calibration=calibration)
        comparison = compare_results(calibrated, raw, task)
        assert comparison.significant and comparison.difference >= 0.2, (calibration, comparison.describe())


def test_a_calibrated_run_keeps_its_prior_in_the_found_prompt(tmp_path: Path) -> None:
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "prompthone.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600, check=False)

    task = ["--task", "gen:sentiment_templates", "--limit", "60"]
    # the 135M proposes too: this test is about the calibration a found prompt keeps, not about proposals
    run = cli("optimize", *task, "--method", "ape", "--meta-model", "local", "--budget", "200", "--calibration",
              "batch", "--runs-dir",
              str(tmp_path / "runs"), "--quiet", "--json", "-o", "num_subsamples=2", "-o",
              "num_prompts_per_subsample=2", "-o", "eval_samples=6", "-o", "mc_rounds=0")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    run_dir = Path(result["run_dir"])
    assert json.loads((run_dir / "config.json").read_text())["calibration"] == "batch"
    candidates = [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]
    assert candidates and all(c["prompt"]["calibration"]["method"] == "batch" for c in candidates)
    # the prior of each candidate is its mean label distribution over the train inputs (24 of them here, < 32)
    assert all(c["prompt"]["calibration"]["n"] == 24 for c in candidates)
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["best_prompt"]["calibration"]["method"] == "batch"
    # `eval` of the saved result scores the found prompt with its own prior: the run's test score, to the digit
    evaluated = cli("eval", *task, "--prompt-file", str(run_dir / "result.json"), "--split", "test", "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"{result['test_score']:.4f}" in evaluated.stdout
    # the same prompt without its prior is another prompt: scored again uncalibrated, it is the raw score
    uncalibrated = dict(saved["best_prompt"], calibration=None)
    (tmp_path / "raw.json").write_text(json.dumps(uncalibrated))
    again = cli("eval", *task, "--prompt-file", str(tmp_path / "raw.json"), "--split", "test", "--quiet",
                "--calibration", "batch")
    assert again.returncode == 0 and f"{result['test_score']:.4f}" in again.stdout, again.stderr
