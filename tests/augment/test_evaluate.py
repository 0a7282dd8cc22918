"""The augmentation evaluation: answers, comparisons (vs none and head to head), the shared meter, report files."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.fake_judge import ScriptedJudge

from prompthone.augment.augmenter import Augmenter
from prompthone.augment.designs import PAS, REWRITE
from prompthone.augment.evaluate import evaluate_augmentation
from prompthone.errors import ConfigError, InputError
from prompthone.evaluation.cache import CallCache

PROMPTS = ["Explain why the sky is blue.", "Write a haiku about rain."]


def _systems(model: ScriptedJudge) -> dict[str, Augmenter]:
    return {"pas": Augmenter(model, model, design=PAS, answer_tokens=32),
            "rewrite": Augmenter(model, model, design=REWRITE, answer_tokens=32)}


def test_scripted_evaluation_counts_and_report(tmp_path: Path) -> None:
    # The complement text reaches both systems' answers (appended by PAS, as the whole rewrite by `rewrite`); the
    # judge prefers any answer holding it, else position A.
    model = ScriptedJudge(favourite="Cover every step")
    cache = CallCache(tmp_path / "calls.sqlite")
    report = evaluate_augmentation(PROMPTS, target_model=model, judge_model=model, systems=_systems(model),
                                   cache=cache, seed=1, progress=False)
    rows = {r["comparison"]: r for r in report.table()}
    assert list(rows) == ["pas vs none", "rewrite vs none", "pas vs rewrite"]
    pas_row = rows["pas vs none"]
    assert (pas_row["wins"], pas_row["win_rate"], pas_row["consistency"]) == (2, 1.0, 1.0)
    assert rows["rewrite vs none"]["wins"] == 2
    # Both answers hold the text: only position decides, so every order disagrees.
    assert (rows["pas vs rewrite"]["ties"], rows["pas vs rewrite"]["consistency"]) == (2, 0.0)
    assert report.baseline_answers == tuple(f"reply: {p}" for p in PROMPTS)
    assert report.system_answers["pas"][0].augmented_prompt == f"{PROMPTS[0]}\n\nCover every step."
    assert report.system_answers["rewrite"][0].augmented_prompt == "Cover every step."
    # One shared meter: 2 plain answers + 2 × (2 outputs + 2 answers) + 3 comparisons × 2 prompts × 2 orders.
    # The rewriter's two rewrites are the same text, so its second answer request is a cache hit.
    assert report.spend["calls"] == 2 + 8 + 12 and report.spend["cache_hits"] == 1
    json_path, md_path = report.write(tmp_path / "out")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["n"] == 2 and data["summary"]["pas vs none"]["wins"] == 2
    assert data["records"][1]["systems"]["pas"]["output"] == "Cover every step."
    assert set(data["records"][0]["verdicts"]) == {"pas vs none", "rewrite vs none", "pas vs rewrite"}
    assert "| pas vs none | 2 | 2 | 0 | 0 | 1.000 |" in md_path.read_text(encoding="utf-8")
    again = evaluate_augmentation(PROMPTS, target_model=model, judge_model=model, systems=_systems(model),
                                  cache=cache, seed=1, progress=False)
    assert again.spend["new_calls"] == 0 and again.table() == report.table()
    cache.close()


def test_baseline_answers_and_judge_mode() -> None:
    model = ScriptedJudge(favourite="Cover every step", score=False)
    report = evaluate_augmentation(PROMPTS, target_model=model, judge_model=model,
                                   systems={"pas": _systems(model)["pas"]}, baseline_answers=["x", "y"],
                                   progress=False)
    assert report.judge_mode == "generate" and report.baseline_answers == ("x", "y")
    assert [r["comparison"] for r in report.table()] == ["pas vs none"]
    assert report.spend["calls"] == 4 + 4  # no plain answers generated


def test_evaluation_input_errors() -> None:
    model, other = ScriptedJudge(), ScriptedJudge(favourite="x")
    with pytest.raises(ConfigError, match="same target"):
        evaluate_augmentation(PROMPTS, target_model=other, judge_model=model, systems=_systems(model),
                              progress=False)
    with pytest.raises(ConfigError, match="another name"):
        evaluate_augmentation(PROMPTS, target_model=model, judge_model=model,
                              systems={"none": _systems(model)["pas"]}, progress=False)
    with pytest.raises(InputError, match="baseline answers"):
        evaluate_augmentation(PROMPTS, target_model=model, judge_model=model, systems=_systems(model),
                              baseline_answers=["only one"], progress=False)
    with pytest.raises(ConfigError, match="no systems"):
        evaluate_augmentation(PROMPTS, target_model=model, judge_model=model, systems={}, progress=False)


@pytest.mark.e2e
def test_embedded_evaluation_writes_a_consistent_report(embedded_model: Any, tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    # The base model writes the complements under the PAS design; short outputs keep the test well under a minute.
    pas = Augmenter(embedded_model, embedded_model, design=replace(PAS, max_tokens=32), answer_tokens=40)
    started = time.perf_counter()
    report = evaluate_augmentation(PROMPTS, target_model=embedded_model, judge_model=embedded_model,
                                   systems={"pas": pas}, cache=cache, seed=0, progress=False)
    seconds = time.perf_counter() - started
    json_path, md_path = report.write(tmp_path / "eval")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    summary = data["summary"]["pas vs none"]
    assert summary["n"] == len(PROMPTS) == len(data["records"])
    assert summary["wins"] + summary["ties"] + summary["losses"] == summary["n"]
    assert 0.0 <= summary["ci_low"] <= summary["win_rate"] <= summary["ci_high"] <= 1.0
    assert data["judge_mode"] == "labels" and summary["mean_score"] is not None
    for record in data["records"]:
        pas_record = record["systems"]["pas"]
        assert pas_record["augmented_prompt"].startswith(record["prompt"])  # PAS appends, never replaces
        assert record["baseline_answer"] and pas_record["answer"]
    # 2 plain answers + 2 complements + 2 augmented answers + 2 prompts × 2 orders of judging.
    assert data["spend"]["calls"] == 10
    assert "pas vs none" in md_path.read_text(encoding="utf-8")
    outputs = [a.output for a in report.system_answers["pas"]]
    print(f"\ne2e evaluation: {seconds:.1f} s, {report.table()}, outputs {outputs}")
    cache.close()
