"""The systems the peer benchmark runs: prompthone's methods and the peers, each with its runner and environment.

Why one table: the harness treats every system the same way (a runner process, a job file, a proxy account), so
adding a system is one entry here plus a runner. Peers run from their own virtual environment, installed from the
pinned `requirements/<env>.txt`; prompthone's systems run from the interpreter running the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNERS = Path(__file__).parent / "runners"
LOGPROB_NOTE = "scores candidates by label log-probabilities"
TEXT_NOTE = "generated text only: cannot use log-probability label scoring"


def _no_options(budget: int, dev_size: int) -> dict[str, Any]:
    return {}


def _ape_options(budget: int, dev_size: int) -> dict[str, Any]:
    # Paper defaults (10 proposals per subsample, 50 scoring examples) spend the whole budget on the first round at
    # these sizes; fewer proposals and scoring examples leave room for the Monte-Carlo round, as in `make demo`.
    return {"num_prompts_per_subsample": 3, "eval_samples": 16 if budget >= 150 else 8, "mc_top_k": 3,
            "mc_samples_per_prompt": 2}


def _opro_options(budget: int, dev_size: int) -> dict[str, Any]:
    # The paper's 8 proposals per step and full-train scoring would be a single step here; 4 proposals scored on
    # a fixed sample of the training split give several steps of the optimization trajectory OPRO depends on.
    return {"num_generated_instructions": 4, "score_examples": 16 if budget >= 150 else 8}


def _apo_options(budget: int, dev_size: int) -> dict[str, Any]:
    # ProTeGi's structure at a smaller scale (as in `prompthone compare`): 3 rounds, beam 2, 2 gradients, one
    # Monte-Carlo paraphrase, 4 successors per parent, UCB over 4 rounds x 3 prompts x 8 samples.
    small = budget < 150
    return {"rounds": 3, "beam_size": 2, "minibatch_size": 8 if small else 16, "n_gradients": 2,
            "mc_samples_per_step": 1, "max_expansion_factor": 4, "eval_rounds": 4, "eval_prompts_per_round": 3,
            "samples_per_eval": 4 if small else 8, "selector": "ucb"}


def _mipro_options(budget: int, dev_size: int) -> dict[str, Any]:
    # DSPy's light mode scores 35-example minibatches and reads up to 10 batches for its data summary: the budget
    # would be gone before the first trial. Small minibatches, one summary batch and 4 demo sets leave room for
    # several TPE trials after the seed's full dev evaluation.
    return {"num_demo_sets": 4, "max_bootstrapped_demos": 3, "max_labeled_demos": 4, "num_instruction_candidates": 3,
            "num_trials": 10, "minibatch_size": 8, "minibatch_full_eval_steps": 4, "view_data_batch_size": 8,
            "max_summary_batches": 1, "meta_max_tokens": 120}


def _gepa_options(budget: int, dev_size: int) -> dict[str, Any]:
    # GEPA's defaults (3-example minibatches) with a Pareto set of at most 8 dev examples, so that accepted children
    # can be scored on it; the call budget is the stop condition.
    return {"pareto_set_size": min(8, dev_size), "minibatch_size": 3, "meta_max_tokens": 160}


def _optimistic(budget: int, dev_size: int) -> dict[str, Any]:
    # Take a step whenever its cheapest useful outcome fits, as prompthone's methods do (they run until the budget
    # stops them); the runners' default ("worst_case") can leave a step's worth of the budget unspent.
    return {"step_guard": "optimistic"}


@dataclass(frozen=True)
class System:
    """One contender. `env` is None for prompthone's own systems (run by the harness's interpreter)."""

    name: str
    runner: str  # file in runners/
    env: str | None  # requirements/<env>.txt and the venv name
    note: str  # what the system can use here, printed beside its results
    options: Callable[[int, int], dict[str, Any]] = field(default=_no_options)  # (budget calls, dev size) → knobs

    @property
    def runner_path(self) -> Path:
        return RUNNERS / self.runner


SEED = "seed"  # the task's seed prompt, scored without any optimization (0 calls)

SYSTEMS: dict[str, System] = {s.name: s for s in (
    System("prompthone-ape", "prompthone_runner.py", None, LOGPROB_NOTE, _ape_options),
    System("prompthone-opro", "prompthone_runner.py", None, LOGPROB_NOTE, _opro_options),
    System("prompthone-apo", "prompthone_runner.py", None, LOGPROB_NOTE, _apo_options),
    System("prompthone-mipro", "prompthone_runner.py", None, LOGPROB_NOTE, _mipro_options),
    System("prompthone-gepa", "prompthone_runner.py", None, LOGPROB_NOTE, _gepa_options),
    System("dspy-mipro", "dspy_runner.py", "dspy", TEXT_NOTE),
    System("dspy-gepa", "dspy_runner.py", "dspy", TEXT_NOTE),
    System("dspy-copro", "dspy_runner.py", "dspy", TEXT_NOTE),
    System("textgrad", "textgrad_runner.py", "textgrad", TEXT_NOTE, _optimistic),
    System("promptolution-opro", "promptolution_runner.py", "promptolution", TEXT_NOTE, _optimistic),
    System("promptolution-evoprompt", "promptolution_runner.py", "promptolution", TEXT_NOTE, _optimistic),
    System("promptolution-capo", "promptolution_runner.py", "promptolution", TEXT_NOTE, _optimistic),
)}


def select(names: list[str] | None) -> list[str]:
    """The systems to run, in table order: the seed prompt first, then the named ones (default: all)."""
    if not names:
        return [SEED, *SYSTEMS]
    unknown = [n for n in names if n != SEED and n not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown system(s) {', '.join(unknown)}; known: {SEED}, {', '.join(SYSTEMS)}")
    return [SEED, *[n for n in names if n != SEED]]
