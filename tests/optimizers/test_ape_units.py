"""APE's logic with exact checks on scripted models: execution accuracy vs likelihood, the UCB rounds, the Monte-Carlo
resampling, and the published defaults."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from tests.fakes.fake_model import CountingModel, ReplyingModel

from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import ContinuationScores, ScoringRequest
from prompthone.optimizers.ape import APE
from prompthone.optimizers.base import OptimizationContext, OptimizationState
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task

LABELS = ("yes", "no", "maybe")
#: label log-probabilities by instruction: "Right" puts its argmax on the gold label "yes" but little mass there;
#: "Likely" puts more mass on "yes" than "Right" does but its argmax on "no" (log-softmax: -0.744 vs -1.065)
LOGPROBS = {"Right": (-1.0, -1.05, -1.05), "Likely": (-1.0, -0.9, -10.0), "Seed": (-2.0, -1.0, -1.0)}


class ScriptedTask(CountingModel):
    """Scores the label set by which instruction the prompt holds (see LOGPROBS)."""

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.calls += 1
            text = " ".join(m.content for m in r.messages)
            key = next(k for k in LOGPROBS if k in text)
            yield i, ContinuationScores(LOGPROBS[key], prompt_tokens=10)


def paraphrase(text: str, n: int) -> str:
    """Answers the resampling template with a numbered variation of the instruction it names."""
    source = text.split("Input: ", 1)[1].split("\n", 1)[0] if "Input: " in text else "Seed."
    return f"{source.rstrip('.')} variation {n}."


def _setup(ape: APE) -> tuple[OptimizationContext, OptimizationState, ReplyingModel, ScriptedTask]:
    examples = tuple(Example(f"question {i}", "yes") for i in range(30))
    task = Task("t", examples, examples[:20], examples[:5], metric="label_accuracy", labels=LABELS)
    model, meta = ScriptedTask(), ReplyingModel(paraphrase)
    metered = MeteredModel(model, meter=BudgetMeter())
    ctx = OptimizationContext(task, Evaluator(task, metered), MeteredModel(meta, meter=BudgetMeter()),
                              random.Random(0), Prompt("Seed."), lambda cand: None)
    state = OptimizationState()
    for text in ("Seed.", "Right.", "Likely."):
        ctx.new_candidate(state, Prompt(text), parent=None, origin="seed" if text == "Seed." else "induced")
    ape.start(ctx, state)
    return ctx, state, meta, model


def _best(ape: APE, state: OptimizationState) -> str:
    return ape.top(state, 1)[0].prompt.instruction


def test_execution_accuracy_and_likelihood_pick_different_instructions() -> None:
    by_metric = APE()  # the published default: execution accuracy
    ctx, state, _, _ = _setup(by_metric)
    by_metric.select(ctx, state, [])
    assert _best(by_metric, state) == "Right." and state.pool[1].scores[by_metric.rank_key] == 1.0
    assert state.pool[2].scores[by_metric.rank_key] == 0.0
    by_likelihood = APE(score_with="likelihood")
    ctx, state, _, _ = _setup(by_likelihood)
    by_likelihood.select(ctx, state, [])
    assert _best(by_likelihood, state) == "Likely."
    assert state.pool[2].scores[by_likelihood.rank_key] > state.pool[1].scores[by_likelihood.rank_key]


def test_full_evaluation_scores_every_candidate_on_the_same_eval_samples() -> None:
    ape = APE(eval_samples=7)
    ctx, state, _, model = _setup(ape)
    ape.select(ctx, state, [])
    assert all(c.n_scored[ape.rank_key] == 7 for c in state.pool.values())
    assert model.calls == 3 * 7 and state.done  # no iterative search by default: one step


def test_ucb_spends_its_rounds_on_the_highest_indices() -> None:
    ape = APE(eval_method="ucb", ucb_rounds=4, ucb_prompts_per_round=2, eval_samples=5)
    ctx, state, _, model = _setup(ape)
    ape.select(ctx, state, [])
    pulls = {c.prompt.instruction: c.n_scored.get(ape.rank_key, 0) for c in state.pool.values()}
    assert sum(pulls.values()) == model.calls == 4 * 2 * 5  # rounds × prompts per round × samples
    assert pulls["Right."] == max(pulls.values()) and _best(ape, state) == "Right."


def test_iterative_monte_carlo_paraphrases_the_top_candidates() -> None:
    ape = APE(mc_rounds=1, mc_top_k=2, mc_samples_per_prompt=2, eval_samples=4)
    ctx, state, meta, _ = _setup(ape)
    ape.select(ctx, state, [])
    state.step = 1
    top = [c.id for c in ape.top(state, 2)]
    made = ape.propose(ctx, state)
    assert len(made) == 4 and all(c.origin == "resampled" and c.parent in top for c in made)
    assert all(text.startswith("Generate a variation of the following instruction") for text in meta.asked)
    assert {c.prompt.instruction.split(" variation")[0] for c in made} == {"Right", "Seed"}  # Seed ties Likely: older
    ape.select(ctx, state, made)
    assert state.done and all(ape.rank_key in c.scores for c in made)


def test_defaults_are_the_papers_instruction_induction_configuration() -> None:
    knobs = APE.knobs()
    assert (knobs["num_subsamples"], knobs["num_demos"], knobs["num_prompts_per_subsample"]) == (3, 5, 30)
    assert (knobs["score_with"], knobs["eval_method"], knobs["eval_samples"], knobs["mc_rounds"]) == \
        ("metric", "full", 20, 0)
    assert (knobs["gen_temperature"], knobs["gen_top_p"], knobs["gen_max_tokens"]) == (0.9, 0.9, 50)
    assert isinstance(APE.departures, tuple) and APE.departures
