"""The systems the peer benchmark runs: prompthone's methods and the peers, each with its runner and environment.

Why one table: the harness treats every system the same way (a runner process, a job file, a proxy account), so
adding a system is one entry here plus a runner. Peers run from their own virtual environment, installed from the
pinned `requirements/<env>.txt`; prompthone's systems run from the interpreter running the harness.

Knob sizing: every system's knobs are sized for the run's budget, here for prompthone's methods and in each peer's
runner for the peers (DSPy's, TextGrad's and promptolution's arithmetic is documented there), from the same facts
(`Sizing`): the budget, the dev split, and whether proposer calls are paid from the budget. With a separate
proposer (the `qwen` regime) the budget counts task-model calls only, for every system alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNERS = Path(__file__).parent / "runners"
LOGPROB_NOTE = "scores candidates by label log-probabilities"
AUTO_NOTE = LOGPROB_NOTE + "; a found calibration applies to log-prob scoring only"
TEXT_NOTE = "generated text only: cannot use log-probability label scoring"
#: DSPy LM calls per prediction, measured per embedded task model: SmolLM2-135M's ChatAdapter replies never parse,
#: so the JSONAdapter fallback is a second call; Qwen2.5-Coder-0.5B writes the ChatAdapter format (87 of 87
#: predictions parsed in the qwen regime's quick run). Any other model (`--server-url`) is assumed to need 2: it
#: sizes fewer trials, and the runner's own count stops a run at its budget either way.
DSPY_CALLS_PER_PREDICTION = {"local": 2.0, "qwen-0.5b": 1.0}
UNMEASURED_CALLS_PER_PREDICTION = 2.0


def dspy_calls_per_prediction(task_model: str | None) -> float:
    """DSPy LM calls per prediction for an embedded task model spec (None: a server of unknown model)."""
    return DSPY_CALLS_PER_PREDICTION.get(task_model or "", UNMEASURED_CALLS_PER_PREDICTION)


@dataclass(frozen=True)
class Sizing:
    """What a run's knobs are sized from: its budget, its dev split, and who pays for proposals."""

    budget: int  # calls the run may spend: task-model calls with a separate proposer, else every call
    dev_size: int
    separate_proposer: bool = False  # proposer calls go to their own account and are not paid from `budget`
    task_model: str | None = "local"  # the embedded task model's spec; None: a server (`--server-url`)


def _no_options(sizing: Sizing) -> dict[str, Any]:
    return {}


def _ape_options(sizing: Sizing) -> dict[str, Any]:
    # APE's published configuration (3 subsets × 5 demos, execution accuracy on 20 samples, no iterative search)
    # with fewer proposals than its 30 per subset, which would spend the whole budget scoring. Proposals are meta
    # calls: free of a task-call budget, so a separate proposer gets 4 per subset.
    return {"num_prompts_per_subsample": 4 if sizing.separate_proposer else 3,
            "eval_samples": 20 if sizing.budget >= 150 else 8}


def _opro_options(sizing: Sizing) -> dict[str, Any]:
    # The paper's 8 proposals per step and full-train scoring would be a single step here; 4 proposals scored on
    # a fixed sample of the training split give several steps of the optimization trajectory OPRO depends on.
    return {"num_generated_instructions": 4, "score_examples": 16 if sizing.budget >= 150 else 8}


def _apo_options(sizing: Sizing) -> dict[str, Any]:
    # ProTeGi's structure at a smaller scale (as in `prompthone compare`): 3 rounds, beam 2, 2 gradients, one
    # Monte-Carlo paraphrase, 4 successors per parent, UCB over 4 rounds x 3 prompts x 8 samples.
    small = sizing.budget < 150
    return {"rounds": 3, "beam_size": 2, "minibatch_size": 8 if small else 16, "n_gradients": 2,
            "mc_samples_per_step": 1, "max_expansion_factor": 4, "eval_rounds": 4, "eval_prompts_per_round": 3,
            "samples_per_eval": 4 if small else 8, "selector": "ucb"}


def _mipro_options(sizing: Sizing) -> dict[str, Any]:
    # DSPy's light mode scores 35-example minibatches and reads up to 10 batches for its data summary: the budget
    # would be gone before the first trial. Small minibatches, one summary batch and 4 demo sets leave room for
    # several TPE trials after the seed's full dev evaluation.
    return {"num_demo_sets": 4, "max_bootstrapped_demos": 3, "max_labeled_demos": 4, "num_instruction_candidates": 3,
            "num_trials": 10, "minibatch_size": 8, "minibatch_full_eval_steps": 4, "view_data_batch_size": 8,
            "max_summary_batches": 1, "meta_max_tokens": 120}


def _gepa_options(sizing: Sizing) -> dict[str, Any]:
    # GEPA's defaults (3-example minibatches) with a Pareto set of at most 8 dev examples, so that accepted children
    # can be scored on it; the call budget is the stop condition.
    return {"pareto_set_size": min(8, sizing.dev_size), "minibatch_size": 3, "meta_max_tokens": 160}


def _optimistic(sizing: Sizing) -> dict[str, Any]:
    # Take a step whenever its cheapest useful outcome fits, as prompthone's methods do (they run until the budget
    # stops them); the runners' default ("worst_case") can leave a step's worth of the budget unspent.
    return {"step_guard": "optimistic"}


def _dspy_options(sizing: Sizing) -> dict[str, Any]:
    # The runner sizes MIPROv2 (trials), GEPA (max_metric_calls) and COPRO (breadth, depth) from the budget, the
    # splits and the LM calls one prediction costs, which depends on the task model (`dspy_calls_per_prediction`).
    return {"calls_per_prediction": dspy_calls_per_prediction(sizing.task_model)}


@dataclass(frozen=True)
class System:
    """One contender. `env` is None for prompthone's own systems (run by the harness's interpreter)."""

    name: str
    runner: str  # file in runners/
    env: str | None  # requirements/<env>.txt and the venv name
    note: str  # what the system can use here, printed beside its results
    options: Callable[[Sizing], dict[str, Any]] = field(default=_no_options)  # the run's sizing → knobs

    @property
    def runner_path(self) -> Path:
        return RUNNERS / self.runner


SEED = "seed"  # the task's seed prompt, scored without any optimization (0 calls)

SYSTEMS: dict[str, System] = {s.name: s for s in (
    # the default method with its defaults: it races calibrated forms, and its found calibration is part of its
    # prompt, applied by the harness to label scoring (text scoring reads the generated answer, uncalibrated)
    System("prompthone-auto", "prompthone_runner.py", None, AUTO_NOTE),
    System("prompthone-ape", "prompthone_runner.py", None, LOGPROB_NOTE, _ape_options),
    System("prompthone-opro", "prompthone_runner.py", None, LOGPROB_NOTE, _opro_options),
    System("prompthone-apo", "prompthone_runner.py", None, LOGPROB_NOTE, _apo_options),
    System("prompthone-mipro", "prompthone_runner.py", None, LOGPROB_NOTE, _mipro_options),
    System("prompthone-gepa", "prompthone_runner.py", None, LOGPROB_NOTE, _gepa_options),
    System("dspy-mipro", "dspy_runner.py", "dspy", TEXT_NOTE, _dspy_options),
    System("dspy-gepa", "dspy_runner.py", "dspy", TEXT_NOTE, _dspy_options),
    System("dspy-copro", "dspy_runner.py", "dspy", TEXT_NOTE, _dspy_options),
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
