"""The PAS benchmark runs at quick sizes on a small corpus of its own: data pipeline, two LoRA runs, judged
evaluation, its raw results and the section written from them, and nothing published to RESULTS.md or the committed
raw file.

Only that every step runs and what it writes are checked; the win rates are its output, never a test condition.
(The BIG-bench corpus of a real run needs the BIG-bench sdist, which CI's index lacks, hence `--corpus`.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.augment.test_pipeline_e2e import CORPUS

pytestmark = [pytest.mark.e2e, pytest.mark.pas, pytest.mark.torch]
ROOT = Path(__file__).resolve().parents[2]
# The pipeline e2e test's prompts without its planted near-duplicate (CORPUS[1]), and one more.
PROMPTS = [CORPUS[0], *CORPUS[2:], "List three ways to save water at home."]


def test_quick_pas_benchmark_runs_every_step_and_writes_its_section_from_raw(tmp_path: Path) -> None:
    corpus, out = tmp_path / "corpus.jsonl", tmp_path / "out"
    corpus.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS), encoding="utf-8")
    results_md, raw = tmp_path / "RESULTS.md", tmp_path / "pas.json"
    command = [sys.executable, "-m", "benchmarks.pas", "--quick", "--corpus", str(corpus), "--out", str(out),
               "--results-md", str(results_md), "--raw", str(raw)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not results_md.exists() and not raw.exists()  # a quick run publishes nothing

    written = json.loads((out / "pas.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in written["stages"]] == ["corpus", "dedup", "sample", "quality", "categorize",
                                                      "generate", "critique"]
    assert written["stages"][0]["items_out"] == len(PROMPTS)
    trained = [t["design"] for t in written["trained"]]
    assert trained and sorted(trained + written["untrained"]) == ["pas", "rewrite"]  # a design the critic left
    assert all(t["metadata"]["steps"] == 2 for t in written["trained"])                # no pair for is not trained
    evaluation = written["evaluation"]
    assert evaluation["n"] >= 1 and len(evaluation["records"]) == evaluation["n"]
    assert {f"{design} vs none" for design in trained} <= {row["comparison"] for row in evaluation["table"]}
    assert written["command"].startswith("python -m benchmarks.pas --quick")

    published = subprocess.run([sys.executable, "-m", "benchmarks.pas", "--from-raw", "--raw", str(out / "pas.json"),
                                "--results-md", str(results_md)], cwd=ROOT, capture_output=True, text=True,
                               timeout=300, check=False)
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]
    section = results_md.read_text(encoding="utf-8")
    assert "<!-- pas:start -->" in section and "### Training" in section
    assert f"| {trained[0]} vs none | {evaluation['n']} |" in section
    assert (tmp_path / "pas-loss.png").is_file()
