"""APO (ProTeGi) end to end on the embedded model, one round with each bandit selector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes.run_files import assert_run_files, read_jsonl

import prompthone as ph
from prompthone.selection import SELECTORS

pytestmark = pytest.mark.e2e

TINY = {"rounds": 1, "beam_size": 2, "minibatch_size": 8, "n_gradients": 2, "errors_per_gradient": 2,
        "mc_samples_per_step": 1, "max_expansion_factor": 3, "eval_rounds": 2, "eval_prompts_per_round": 2,
        "samples_per_eval": 4}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One call cache for all selectors: the expansion phase is identical for the same seed."""
    return tmp_path_factory.mktemp("apo") / "calls.sqlite"


@pytest.mark.parametrize("selector", sorted(SELECTORS))
def test_apo_one_round_with_each_selector(selector: str, embedded_model, shared_cache: Path, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    result = ph.optimize(task, method="apo", model=embedded_model, budget=150, seed=3,
                         options={**TINY, "selector": selector}, run_dir=tmp_path, cache=shared_cache, progress=False)
    run = Path(result.run_dir or "")
    assert result.spend["calls"] <= 150
    assert result.best_dev_score >= result.seed_dev_score
    assert result.best_prompt.output_format == task.output_format  # only the instruction is edited
    assert_run_files(run, events=False)
    steps = read_jsonl(run / "steps.jsonl")
    candidates = {}
    for line in (run / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        candidates[record["id"]] = record
    assert result.stopped_reason == "finished"
    assert len(steps) == 1
    assert len(candidates) >= 3, "APO should propose successors to choose among"
    assert len(steps[0]["frontier"]) == 2  # beam_size
    children = [c for c in candidates.values() if c["parent"] is not None]
    assert children and all(c["parent"] == 0 for c in children)
    # an edit and its paraphrases record the gradient they came from; the parent's own Monte-Carlo paraphrases have
    # none (the reference paraphrases the parent too)
    assert all(c["data"].get("gradient") for c in children if c["origin"] == "edit")
    assert all(c["origin"] == "paraphrase" for c in children if not c["data"].get("gradient"))
    assert all("bandit" in candidates[i]["scores"] for i in steps[0]["frontier"])
