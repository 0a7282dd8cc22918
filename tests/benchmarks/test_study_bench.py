"""benchmarks/study.py writes its RESULTS.md section from the raw file alone, and words each finding from its
interval: a synthetic raw file where the optimizer clearly beats the best hand prompt, and one where it does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.study import RUN_COMMAND, SETTINGS, main


def _raw(optimizer_test: list[float]) -> dict[str, Any]:
    rows = [["", "", "", cot, 0.25, 8, 8, 0, [0.25]] for cot in (False, True)]
    rows += [["You are an expert mathematician.", "", "", False, 0.5, 24, 24, None, [0.375, 0.5]]]
    prompt = {"instruction": "Solve it."}
    test_n = len(optimizer_test)
    return {"settings": SETTINGS, "study_command": RUN_COMMAND, "study_dir": "x", "task_model": "smol",
            "meta_model": "qwen", "cot_tokens": 128, "n_dev": 24, "n_test": test_n, "rungs": [8, 24],
            "grid_calls": 80, "full_grid_calls": 144, "grid_wall_s": 600.0, "rows": rows,
            "prompts": [{"label": "seed prompt", "kind": "seed", "prompt": prompt, "dev": 0.25, "calls": None,
                         "test": [0.0] * test_n},
                        {"label": "best hand prompt", "kind": "hand", "prompt": prompt, "dev": 0.5, "calls": 80,
                         "test": [1.0] * (test_n // 4) + [0.0] * (test_n - test_n // 4)},
                        {"label": "gepa", "kind": "optimizer", "prompt": {**prompt, "answer_prefix": "The answer"},
                         "dev": 0.6, "calls": 75, "rank": "rank 1 of 4", "stopped": "budget",
                         "test": optimizer_test}],
            "rescoring": {"new_calls": 0, "wall_s": 1.0}, "command": "python -m benchmarks.study --study-dir x",
            "versions": "v", "commit": "abc"}


def _section(tmp_path: Path, raw: dict[str, Any]) -> str:
    (tmp_path / "study.json").write_text(json.dumps(raw))
    (tmp_path / "RESULTS.md").write_text("# Results\n")
    assert main(["--from-raw", "--raw", str(tmp_path / "study.json"), "--results-md",
                 str(tmp_path / "RESULTS.md")]) == 0
    return (tmp_path / "RESULTS.md").read_text()


def test_a_clear_win_over_the_best_hand_prompt_is_said_to_hold(tmp_path: Path) -> None:
    text = _section(tmp_path, _raw([1.0] * 60 + [0.0] * 40))
    assert "Command: `python -m benchmarks.study --study-dir x` (source commit abc)" in text
    assert "| gepa | 0.600 | 0.600 | +0.600 (" in text and "here the paper's shape holds" in text
    assert "answer_prefix 'The answer'" in text
    assert "range 0.250–0.375" in text and "opener (spread 0.125)" in text


def test_a_tie_with_the_best_hand_prompt_is_no_difference(tmp_path: Path) -> None:
    text = _section(tmp_path, _raw([1.0] * 26 + [0.0] * 74))
    assert "no difference: +0.010" in text and "is not shown here" in text
