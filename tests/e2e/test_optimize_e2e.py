"""`prompthone optimize` with APE on the embedded model, end to end: budget, dev ≥ seed, cached re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import prompthone as ph

pytestmark = pytest.mark.e2e

TINY_APE = ["-o", "num_subsamples=2", "-o", "num_prompts_per_subsample=3", "-o", "num_demos=3",
            "-o", "eval_samples=8", "-o", "mc_top_k=2", "-o", "mc_samples_per_prompt=2"]


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prompthone.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600, check=False)


def test_optimize_cli_respects_budget_and_reruns_from_cache(tmp_path: Path) -> None:
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache")}
    args = ["optimize", "--task", "gen:sentiment_templates", "--limit", "40", "--method", "ape",
            "--budget", "60", "--runs-dir", str(tmp_path / "runs"), "--quiet", "--json", *TINY_APE]
    first = _cli(args, env, tmp_path)
    assert first.returncode == 0, first.stderr
    r1 = json.loads(first.stdout)
    result_file = Path(r1["run_dir"]) / "result.json"
    saved = json.loads(result_file.read_text())
    assert saved["best_prompt"] == r1["best_prompt"]
    assert r1["spend"]["calls"] <= 60 and r1["spend"]["new_calls"] == r1["spend"]["calls"]
    assert r1["best_dev_score"] >= r1["seed_dev_score"]
    assert 0.0 <= r1["test_score"] <= 1.0 and 0.0 <= r1["seed_test_score"] <= 1.0
    candidates = (Path(r1["run_dir"]) / "candidates.jsonl").read_text().splitlines()
    origins = {json.loads(line)["origin"] for line in candidates}
    assert "seed" in origins and "induced" in origins
    config = json.loads((Path(r1["run_dir"]) / "config.json").read_text())
    assert config["scoring_mode"] == "labels" and config["budget"]["calls"] == 60

    second = _cli(args, env, tmp_path)
    assert second.returncode == 0, second.stderr
    r2 = json.loads(second.stdout)
    assert r2["spend"]["new_calls"] == 0 and r2["final_spend"]["new_calls"] == 0
    assert r2["spend"]["calls"] == r1["spend"]["calls"] == r2["spend"]["cache_hits"]
    assert r2["best_prompt"] == r1["best_prompt"] and r2["test_score"] == r1["test_score"]


def test_python_api_optimize_and_evaluate(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("examples/sentiment.jsonl", seed=1, limit=40)
    result = ph.optimize(task, method="ape", model=embedded_model, budget=ph.Budget(calls=50), seed=1,
                         options={"num_subsamples": 2, "num_prompts_per_subsample": 2, "eval_samples": 6,
                                  "mc_rounds": 0, "score_with": "metric"},
                         run_dir=tmp_path / "runs", cache=tmp_path / "c.sqlite", progress=False)
    assert isinstance(result, ph.OptimizationResult)
    assert result.spend["calls"] <= 50
    assert result.best_dev_score >= result.seed_dev_score
    assert result.best_prompt.output_format == task.output_format  # APE edits only the instruction
    again = ph.evaluate(task, result.best_prompt, embedded_model, split="test", cache=tmp_path / "c.sqlite")
    assert again.score == pytest.approx(result.test_score)
    assert again.n == len(task.test)
    if result.test_comparison is None:  # the winner is the seed candidate itself
        assert result.best_prompt == result.seed_prompt and "seed prompt was kept" in result.improvement
    else:  # best vs seed, pair by pair on the same test examples
        c = result.test_comparison
        assert c is not None and c["n"] == len(task.test)
        assert c["difference"] == pytest.approx(result.test_score - result.seed_test_score)
        assert c["low"] <= c["difference"] <= c["high"] and c["wins"] + c["losses"] + c["ties"] == c["n"]
        assert ("no significant difference" in result.improvement) != c["significant"]


def test_generate_and_parse_mode_on_a_numeric_task(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:arithmetic", limit=12)
    res = ph.evaluate(task, None, embedded_model, split="test", cache=False)
    assert res.n == len(task.test)
    assert all(r.raw for r in res.examples)  # generated text was kept for inspection


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "target": "x"}\n{"input": "b", "target": \n', encoding="utf-8")
    env = {**os.environ, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache")}
    proc = _cli(["eval", "--task", str(bad)], env, tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:2" in proc.stderr.replace("\n", "")
    unknown = _cli(["optimize", "--task", "gen:arithmetic", "--method", "nope"], env, tmp_path)
    assert unknown.returncode == 2 and "unknown method" in unknown.stderr
    bad_opt = _cli(["optimize", "--task", "gen:arithmetic", "-o", "num_demos=many"], env, tmp_path)
    assert bad_opt.returncode == 2 and "num_demos" in bad_opt.stderr
    black_box = _cli(["optimize", "--task", "gen:arithmetic", "--method", "greater", "--budget", "5"], env, tmp_path)
    assert black_box.returncode == 2 and "Traceback" not in black_box.stderr
    assert "prompthone[torch]" in black_box.stderr.replace("\n", "")  # brackets are text, not console markup
