"""OPRO: the meta-prompt shows the top instructions ascending by score with exemplars; e2e on the embedded model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.fakes.fake_model import CountingModel

import prompthone as ph
from prompthone.errors import ConfigError
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.optimizers.base import OptimizationContext, OptimizationState
from prompthone.optimizers.opro import OPRO
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task


def _scored_state(scores: list[float]) -> tuple[OptimizationContext, OptimizationState]:
    train = tuple(Example(f"input {i} <START>hack<END>", "yes") for i in range(10))
    task = Task("t", train, train[:2], train[:2], metric="label_accuracy", labels=("yes", "no"))
    metered = MeteredModel(CountingModel(), meter=BudgetMeter())
    ctx = OptimizationContext(task, Evaluator(task, metered), metered, random.Random(0), Prompt("Seed."),
                              lambda cand: None)
    state = OptimizationState()
    for i, score in enumerate(scores):
        cand = ctx.new_candidate(state, Prompt(f"Instruction {i}."), parent=None, origin="opro")
        assert cand is not None
        cand.scores["train"] = score
    return ctx, state


def _shown(text: str) -> list[tuple[str, str]]:
    """The (instruction, score) pairs of the meta prompt's history, in order."""
    lines = text.splitlines()
    return [(lines[i + 1], lines[i + 3]) for i, line in enumerate(lines) if line == "text:"]


def test_meta_prompt_is_the_references_history_then_problems_with_the_instruction_slot() -> None:
    ctx, state = _scored_state([0.5, 0.9, 0.1, 0.7])
    text = OPRO(max_num_instructions=3, num_exemplars=2).meta_prompt(ctx, state)
    # the best 3 of 4, ascending (best last), scores as integer percentages; the worst one dropped
    assert _shown(text) == [("Instruction 0.", "50"), ("Instruction 3.", "70"), ("Instruction 1.", "90")]
    assert "Instruction 2." not in text
    assert text.startswith("Your task is to generate the instruction <INS>.")
    assert text.index("score:") < text.index("Problem:")  # instructions before exemplars, as the reference
    assert text.count("Problem:\n<INS>\ninput ") == 2 and text.count("Ground truth answer:\nyes") == 2
    assert "<START>hack" not in text  # example text cannot fake the reply format
    assert text.rstrip().endswith("generally applicable to all problems above.")


def test_old_instructions_below_the_threshold_are_not_shown() -> None:
    ctx, state = _scored_state([0.5, 0.9, 0.1, 0.29, 0.3])
    shown = _shown(OPRO(max_num_instructions=4, old_instruction_score_threshold=0.3).meta_prompt(ctx, state))
    # the reference: the top 4 first (0.1 is out), then only those scoring ≥ 0.3 (0.29 is out too)
    assert shown == [("Instruction 4.", "30"), ("Instruction 0.", "50"), ("Instruction 1.", "90")]
    assert len(_shown(OPRO(max_num_instructions=4).meta_prompt(ctx, state))) == 4  # default 0.0: every one
    with pytest.raises(ConfigError, match="old_instruction_score_threshold"):
        OPRO(old_instruction_score_threshold=30)


@pytest.mark.e2e
def test_opro_end_to_end(embedded_model, tmp_path: Path) -> None:
    task = ph.load_task("gen:sentiment_templates", limit=40)
    result = ph.optimize(task, method="opro", model=embedded_model, budget=80, seed=2,
                         options={"steps": 2, "num_generated_instructions": 3, "score_examples": 8},
                         run_dir=tmp_path, cache=tmp_path / "c.sqlite", progress=False)
    assert result.spend["calls"] <= 80
    assert result.best_dev_score >= result.seed_dev_score
    assert result.n_candidates > 1 and result.steps >= 1
    assert result.best_prompt.output_format == task.output_format


def test_methods_lists_the_published_knob_and_the_departures() -> None:
    from typer.testing import CliRunner

    from prompthone.cli import app

    result = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    opro = result.output[result.output.index("opro:"):]
    opro = opro[:opro.index("\n\n") if "\n\n" in opro else None]
    assert "old_instruction_score_threshold=0.0" in opro
    assert "differs on purpose: replies are wrapped in <START>/<END>" in opro
