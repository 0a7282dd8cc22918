"""Each prompt-search method, end to end on the embedded model, in a configuration where it finds a prompt that is
significantly better than the seed on the *test* split (issue 18, point 5).

The setup is the meta-model benchmark's (`benchmarks/meta_models.py`): SmolLM2-135M answers and proposes,
`gen:sentiment_templates` (400 examples, data seed 0: dev 60, test 200), label scoring without calibration, 200
task-model calls. The seed prompt scores 0.525 on test: the 135M model answers its label prior, so a better
instruction or a few demos have room to show. Each method's knobs are the benchmark's, sized to the budget; the run
seed is one where the method won in the benchmark or in its measurement for this test (`MEASURED`, with the paired
95% interval seen then). The assertion is a strict, resolved gain on test — the paired interval excludes 0 and the
difference is at least `MARGIN` — which finalization does not guarantee (it only keeps the seed when nothing beats
it on dev), so a regression in a method's search breaks it. `auto` has its own test (test_auto_e2e.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import prompthone as ph

pytestmark = pytest.mark.e2e

BUDGET = 200
MARGIN = 0.04
CONFIGS: dict[str, tuple[int, dict[str, Any]]] = {  # method → (run seed, knobs)
    "ape": (0, {"num_subsamples": 5, "num_prompts_per_subsample": 4, "score_with": "likelihood", "eval_samples": 20,
                "mc_rounds": 1, "mc_top_k": 3, "mc_samples_per_prompt": 2}),
    "opro": (0, {"score_examples": 12, "num_generated_instructions": 4}),
    "apo": (4, {"rounds": 2, "beam_size": 2, "minibatch_size": 16, "n_gradients": 2, "mc_samples_per_step": 1,
                "samples_per_eval": 8, "eval_rounds": 4}),
    "mipro": (0, {"num_demo_sets": 4, "num_trials": 6, "minibatch_size": 10, "minibatch_full_eval_steps": 3,
                  "max_summary_batches": 1, "meta_max_tokens": 80}),
    "gepa": (0, {"max_metric_calls": BUDGET, "pareto_set_size": 20, "meta_max_tokens": 120}),
}
#: test score minus the seed's, with its paired 95% interval, measured on 2026-12-06 (mipro) and 2026-12-07 (the others,
#: after their fidelity pass, where the earlier run seeds of ape, opro and apo found nothing; seeds tried: ape 0-2,
#: opro 0-2, apo 0-6, gepa 0-2),
#: SmolLM2-135M, llama.cpp, 2 CPUs
MEASURED = {"ape": "+0.090 (+0.050 … +0.130)", "opro": "+0.315 (+0.245 … +0.385)", "apo": "+0.290 (+0.225 … +0.355)",
            "mipro": "+0.095 (+0.055 … +0.135)", "gepa": "+0.055 (+0.025 … +0.090)"}


@pytest.fixture(scope="module")
def task() -> ph.Task:
    return ph.load_task("gen:sentiment_templates", seed=0, limit=400, dev_size=60, test_size=200)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One call cache for the module: the seed prompt's dev and test scores are paid for once."""
    return tmp_path_factory.mktemp("wins") / "calls.sqlite"


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_the_method_finds_a_significantly_better_prompt(method: str, task: ph.Task, cache: Path,
                                                         embedded_model: Any, tmp_path: Path) -> None:
    seed, options = CONFIGS[method]
    result = ph.optimize(task, method=method, model=embedded_model, meta_model=embedded_model, budget=BUDGET,
                         seed=seed, options=options, run_dir=tmp_path, cache=cache, calibration="none",
                         progress=False)
    assert result.spend["calls"] <= BUDGET
    assert result.seed_test_score == pytest.approx(0.525)
    comparison = result.test_comparison
    assert comparison is not None and comparison["n"] == 200
    assert comparison["low"] > 0 and comparison["difference"] >= MARGIN, (
        f"{method}: {comparison} (measured {MEASURED.get(method)}); best prompt {result.best_prompt}")
