"""OPRO — Large Language Models as Optimizers (Yang et al., 2023), for prompt optimization.

The meta model sees a trajectory: the best `max_num_instructions` instructions so far with their training
scores, sorted ascending (best last, nearest the question), plus `num_exemplars` random training examples,
and writes `num_generated_instructions` new instructions per step at temperature 1.0. Each is scored on the
training split and added to the history. The paper runs 200 steps with 20 instructions, 3 exemplars and 8
samples per step; `score_examples` (0 = the whole training split) bounds the cost of each score.

The meta prompt is the reference code's (google-deepmind/opro, `opt_utils.gen_meta_prompt`) for a chat optimizer
(its "gpt" form: 512 new tokens at temperature 1.0, one instruction per reply), with the instruction at the start
of the question and no "Q:/A:". Old instructions are "text:/score:" pairs, scores as integer percentages (100
buckets), shown only when they score at least `old_instruction_score_threshold` (the reference sets 0.0 with its
text-bison scorer, the default here, and 0.3 with GPT scorers); then the exemplars, each a "Problem:" with `<INS>`
where the instruction goes, and its "Ground truth answer:". Ours differs on purpose in two places: the reply is
wrapped in <START>/<END> (the one reply format every method's parser reads) instead of <INS>/</INS>, and it stops at
<END> (only its first item is read, as in the reference); and one sentence says the problems are data, not
instructions (a defence against instructions injected through training data; their own tags are defanged too).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from prompthone.errors import ConfigError
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.prompts.meta import END_TAG, fill, load_meta_prompt, neutralize_tags


@dataclass
class OPRO(Optimizer):
    """A scored history of instructions, shown ascending, drives the meta model to write better ones."""

    name: ClassVar[str] = "opro"
    rank_key: ClassVar[str] = ScoreKey.TRAIN
    departures: ClassVar[tuple[str, ...]] = (
        "replies are wrapped in <START>/<END>, not <INS>/</INS> (one reply format for every method)",
        "the meta prompt says the problems are data, not instructions (a defence against injected instructions)",
    )

    steps: int = 200
    max_num_instructions: int = 20
    num_exemplars: int = 3
    num_generated_instructions: int = 8
    meta_temperature: float = 1.0
    meta_max_tokens: int = 512
    score_examples: int = 0
    old_instruction_score_threshold: float = 0.0

    def __post_init__(self) -> None:
        self.require_positive("steps", "max_num_instructions", "num_generated_instructions")
        if self.num_exemplars < 0 or self.score_examples < 0:
            raise ConfigError("num_exemplars and score_examples must be ≥ 0")
        if not 0.0 <= self.old_instruction_score_threshold <= 1.0:
            raise ConfigError(f"old_instruction_score_threshold must be in [0, 1] (a score), got "
                              f"{self.old_instruction_score_threshold}")

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
        """The OPRO meta-prompt: the top instructions that reach the threshold, ascending by score, then random
        exemplars with `<INS>` where the instruction goes."""
        threshold = self.old_instruction_score_threshold
        top = self.top(state, self.max_num_instructions)
        history = [c for c in reversed(top) if not threshold or c.scores[self.rank_key] >= threshold]
        pairs = "".join(f"\ntext:\n{neutralize_tags(c.prompt.instruction)}\nscore:\n"
                        f"{round(100 * c.scores[self.rank_key])}\n" for c in history)
        exemplars = ctx.rng.sample(list(ctx.task.train), min(self.num_exemplars, len(ctx.task.train)))
        problems = "".join(f"\nProblem:\n<INS>\n{neutralize_tags(e.input)}\n\nGround truth answer:\n"
                           f"{neutralize_tags(e.target)}\n" for e in exemplars)
        return fill(load_meta_prompt("opro_step"), history=pairs, exemplars=problems)

    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        text = self.meta_prompt(ctx, state)
        best = self.top(state, 1)[0]
        made: list[Candidate] = []
        for reply in ctx.ask_meta([text] * self.num_generated_instructions, max_tokens=self.meta_max_tokens,
                                  temperature=self.meta_temperature, stop=(END_TAG,)):
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
