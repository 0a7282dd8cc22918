"""`prompthone study` on the embedded model: a 2×1×2 user grid ± CoT raced by successive halving, contextually
calibrated, APE at the grid's budget with the default meta model, the files and table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prompthone.api import default_meta_model

pytestmark = pytest.mark.e2e

GRID = """\
openers:
  - null
  - You are a careful critic of films and products.
task_lines:
  - Answer the following question.
closers:
  - null
  - This will be fun!
"""
TINY_APE = ("ape:num_subsamples=2,num_prompts_per_subsample=3,num_demos=3,eval_samples=8,mc_rounds=1,mc_top_k=2,"
            "mc_samples_per_prompt=2")


def test_study_cli_on_the_embedded_model(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID, encoding="utf-8")
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "prompthone.cli", "study", "--task", "gen:sentiment_templates",
                           "--limit", "40", "--grid", str(grid), "--cot-tokens", "16", "-M", TINY_APE,
                           "--halving", "--eta", "2", "--min-slice", "4",
                           "--runs-dir", str(tmp_path / "runs"), "--calibration", "contextual", "--quiet"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    [run] = list((tmp_path / "runs").glob("*-study-*"))
    result = json.loads((run / "study.json").read_text())

    with (run / "table.csv").open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(result["rows"]) == 2 * 1 * 2 * 2  # every combo, with and without CoT
    assert {r["cot"] for r in table} == {"True", "False"}
    # halving on 8 dev examples, eta 2: all 8 variants on the first 4, the top half on all 8
    assert result["n_dev"] == 8 and [r["size"] for r in result["rungs"]] == [4, 8]
    survivors = [r for r in table if r["pruned_at_rung"] == ""]
    assert len(survivors) == 4 and all(int(r["n"]) == 8 for r in survivors)
    assert all(int(r["n"]) == 4 and r["pruned_at_rung"] == "0" for r in table if r not in survivors)
    assert all(r["system"].startswith(("Answer the following question.", "You are a careful critic")) for r in table)
    # 3 content-free inputs + the dev examples it reached; CoT: reason + answer for each
    assert all(int(r["calls"]) == (2 if r["cot"] == "True" else 1) * (3 + int(r["n"])) for r in table)
    assert result["spend"]["calls"] == sum(int(r["calls"]) for r in table)
    assert result["full_grid_calls"] == 4 * 11 + 4 * 22 == result["spend"]["calls"] + result["calls_saved"]
    assert result["calls_saved"] > 0
    assert result["scoring_mode"] == "labels" and result["calibration"] == "contextual"
    assert all(r["calibration"]["method"] == "contextual" and r["calibration"]["n"] == 3 for r in result["rows"])
    assert (result["meta_model"] != result["model"]) is (default_meta_model("local") is not None)

    [ape] = result["optimizers"]
    assert ape["budget_calls"] == result["spend"]["calls"] and ape["spend"]["calls"] <= ape["budget_calls"]
    ranking = ape["ranking"]
    assert ranking["of"] == 9 and 1 <= ranking["rank"] <= 9 and ranking["compared"] == 4  # ranked among survivors
    assert ranking["rank"] == 1 + sum(float(r["dev_score"]) > ape["dev_score"] for r in survivors)
    assert 0.0 <= ape["test_score"] <= 1.0 and 0.0 <= result["best_hand_test_score"] <= 1.0
    assert (run / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ranking["text"] in (run / "summary.md").read_text()

    assert "hand prompts on gen:sentiment_templates" in proc.stdout  # the rich table of top combos
    assert "calibration: contextual" in proc.stdout
    assert ranking["text"] in proc.stdout and "study directory:" in proc.stdout
