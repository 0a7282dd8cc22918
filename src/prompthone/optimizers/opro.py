"""OPRO — Large Language Models as Optimizers (Yang et al., 2023), for prompt optimization.

The meta model sees a trajectory: the best `max_num_instructions` instructions so far with their training
scores, sorted ascending (best last, nearest the question), plus `num_exemplars` random training examples,
and writes `num_generated_instructions` new instructions per step at temperature 1.0. Each is scored on the
training split and added to the history. The paper runs 200 steps with 20 instructions, 3 exemplars and 8
samples per step; `score_examples` (0 = the whole training split) bounds the cost of each score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from prompthone.errors import ConfigError
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.prompts.meta import fill, format_demos, load_meta_prompt, neutralize_tags
from prompthone.tasks.example import Example


@dataclass
class OPRO(Optimizer):
    """A scored history of instructions, shown ascending, drives the meta model to write better ones."""

    name: ClassVar[str] = "opro"
    rank_key: ClassVar[str] = ScoreKey.TRAIN

    steps: int = 200
    max_num_instructions: int = 20
    num_exemplars: int = 3
    num_generated_instructions: int = 8
    meta_temperature: float = 1.0
    meta_max_tokens: int = 150
    score_examples: int = 0

    def __post_init__(self) -> None:
        self.require_positive("steps", "max_num_instructions", "num_generated_instructions")
        if self.num_exemplars < 0 or self.score_examples < 0:
            raise ConfigError("num_exemplars and score_examples must be ≥ 0")

    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        train = list(ctx.task.train)
        if not train:
            raise ConfigError(f"OPRO needs training examples; task {ctx.task.name!r} has none")
        n = len(train) if self.score_examples == 0 else min(self.score_examples, len(train))
        state.extra["score_set"] = ctx.rng.sample(range(len(train)), n)
        self._score_new(ctx, state)  # the seed instruction opens the history with its score

    def step_cost(self, shape: TaskShape) -> StepCost:
        """The seed scored first, then per step `num_generated_instructions` new instructions (one meta call each),
        each scored on the training split (or `score_examples` of it)."""
        n = min(self.score_examples, shape.train) if self.score_examples else shape.train
        per_step = shape.evaluations(self.num_generated_instructions, n)
        return StepCost("step", shape.evaluations(1, n) + per_step, self.num_generated_instructions, per_step,
                        self.num_generated_instructions, self.steps, ("num_generated_instructions", "score_examples"))

    def meta_prompt(self, ctx: OptimizationContext, state: OptimizationState) -> str:
        """The OPRO meta-prompt: top instructions ascending by score, then random exemplars."""
        history = list(reversed(self.top(state, self.max_num_instructions)))
        lines = [f"Instruction: {neutralize_tags(c.prompt.instruction)}\nScore: {round(100 * c.scores[self.rank_key])}"
                 for c in history]
        exemplars = ctx.rng.sample(list(ctx.task.train), min(self.num_exemplars, len(ctx.task.train)))
        shown = [Example(neutralize_tags(e.input), neutralize_tags(e.target)) for e in exemplars]
        return fill(load_meta_prompt("opro_step"), history="\n\n".join(lines),
                    exemplars=format_demos(shown, output_label="Answer"))

    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        text = self.meta_prompt(ctx, state)
        best = self.top(state, 1)[0]
        made: list[Candidate] = []
        for reply in ctx.ask_meta([text] * self.num_generated_instructions, max_tokens=self.meta_max_tokens,
                                  temperature=self.meta_temperature):
            for instruction in reply.items[:1]:
                cand = ctx.new_candidate(state, replace(ctx.seed_prompt, instruction=instruction), parent=best.id,
                                         origin="opro")
                if cand is not None:
                    made.append(cand)
        return made

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        self._score_new(ctx, state)
        state.done = state.step + 1 >= self.steps

    def _score_new(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        """Score every unscored candidate on the fixed training sample, so all scores compare."""
        examples = [ctx.task.train[i] for i in state.extra["score_set"]]
        for cand in [c for c in state.pool.values() if self.rank_key not in c.scores]:
            ctx.score(cand, examples, self.rank_key)
        state.frontier = [c.id for c in self.top(state, self.max_num_instructions)]
