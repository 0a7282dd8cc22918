"""A run's found prompt, exported as each form that can be rendered offline, scores exactly as inside prompthone:
`prompthone export --verify` on the embedded model sends the written form on the test split and compares the
predictions example by example (calibrated label scoring and demos included: `auto` finds both)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prompthone.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900, check=False)


def test_every_offline_form_of_a_found_prompt_gives_prompthones_predictions(tmp_path: Path) -> None:
    cache = tmp_path / "calls.sqlite"
    run = _cli("optimize", "--task", "gen:sentiment_templates", "--limit", "120", "--method", "auto",
               "--meta-model", "local", "--budget", "120", "--seed", "0", "--runs-dir", tmp_path / "runs",
               "--cache", cache, "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    run_dir = Path(result["run_dir"])
    found = result["best_prompt"]
    assert found.get("demos") or found.get("calibration"), found  # more than an instruction to carry
    for form in ("openai", "jinja", "promptfoo", "mlflow"):
        extra = ["--mlflow", f"file://{tmp_path}/mlruns"] if form == "mlflow" else []
        proc = _cli("export", run_dir, "--format", form, "--verify", "--out", tmp_path / form, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        verdict = next(line for line in proc.stdout.splitlines() if line.startswith("verify:"))
        assert "same predictions on every example" in verdict, verdict
        assert f"{result['test_score']:.3f} in prompthone" in verdict
    dspy = _cli("export", run_dir, "--format", "dspy", "--out", tmp_path / "dspy")
    assert dspy.returncode == 0 and "DSPy renders its own prompt" in dspy.stdout
