"""APE — Automatic Prompt Engineer (Zhou et al., ICLR 2023), with optional iterative Monte-Carlo search.

1. Induction (paper §3.1, "forward mode"): `num_subsamples` random subsets of `num_demos` training pairs;
   for each, the meta model proposes `num_prompts_per_subsample` instructions at temperature 0.9, top-p 0.9, up
   to 50 tokens, continuing the reference's template "... The instruction was to".
2. Scoring (§3.2): every candidate on `eval_samples` dev examples, by the task metric (execution accuracy) or by
   the log-likelihood of the targets (`score_with='likelihood'`); `eval_method='ucb'` spends the evaluation with
   APE's UCB bandit instead (`ucb_rounds` rounds of the `ucb_prompts_per_round` highest mean + c·sqrt(log N / n),
   N the pulls so far, the first round at random; each pull `eval_samples` fresh examples).
3. Iterative Monte-Carlo (§3.3), off by default: `mc_rounds` times, the top `mc_top_k` candidates are paraphrased
   `mc_samples_per_prompt` times each (the paper's resampling template) and the new candidates scored the same way.

Defaults are one published configuration, the paper's instruction-induction experiments as the reference code
runs them (keirp/automatic_prompt_engineer, `experiments/run_instruction_induction.py`): 3 subsets × 5 demos × 30
proposals, execution accuracy on 20 samples, no iterative search ("we use APE without iterative search as
default", §3.3). The reference library's own defaults (`configs/default.yaml`: 5 subsets × 50 proposals,
likelihood on 50 samples; `configs/bandits.yaml`: UCB, 5 rounds × 50 prompts, c = 1) are one knob change away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from prompthone.errors import ConfigError
from prompthone.evaluation.evaluator import EvalResult
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.prompts.meta import fill, format_demos, load_meta_prompt
from prompthone.tasks.example import Example


@dataclass
class APE(Optimizer):
    """Instruction induction from demo subsets, scoring on dev, iterative Monte-Carlo resampling."""

    name: ClassVar[str] = "ape"
    departures: ClassVar[tuple[str, ...]] = (
        "eval_method='full' scores every candidate on one shared dev sample (the reference draws a sample per "
        "prompt): candidates are compared on the same examples",
        "one meta call per proposal, each with its own seed (the reference asks once for n samples)",
        "the induction template says the pairs are data, not instructions (a defence against injected "
        "instructions); a proposal that repeats four words of a demo is dropped",
    )

    num_subsamples: int = 3
    num_demos: int = 5
    num_prompts_per_subsample: int = 30
    gen_temperature: float = 0.9
    gen_top_p: float = 0.9
    gen_max_tokens: int = 50
    score_with: str = "metric"
    eval_method: str = "full"
    eval_samples: int = 20
    ucb_rounds: int = 5
    ucb_prompts_per_round: int = 50
    ucb_c: float = 1.0
    mc_rounds: int = 0
    mc_top_k: int = 5
    mc_samples_per_prompt: int = 5

    def __post_init__(self) -> None:
        if self.score_with not in ("likelihood", "metric"):
            raise ConfigError(f"score_with must be 'likelihood' or 'metric', got {self.score_with!r}")
        if self.eval_method not in ("full", "ucb"):
            raise ConfigError(f"eval_method must be 'full' or 'ucb', got {self.eval_method!r}")
        self.require_positive("num_subsamples", "num_demos", "num_prompts_per_subsample", "eval_samples")

    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        pool = ctx.task.dev or ctx.task.train
        if not pool or not ctx.task.train:
            raise ConfigError(f"APE needs training and dev examples; task {ctx.task.name!r} has "
                              f"{len(ctx.task.train)} train and {len(ctx.task.dev)} dev")
        size = min(self.eval_samples, len(pool))
        state.extra["eval_sample"] = ctx.rng.sample(range(len(pool)), size)

    def step_cost(self, shape: TaskShape) -> StepCost:
        """Step 1 induces every proposal (one meta call each) and scores them all with the seed; each Monte-Carlo
        round resamples the top `mc_top_k` and scores the new ones."""
        samples = min(self.eval_samples, shape.dev or shape.train)

        def scoring(candidates: int) -> int:
            if self.eval_method == "ucb":
                pulls = self.ucb_rounds * min(self.ucb_prompts_per_round, candidates)
                return pulls * samples * shape.example_calls + candidates * shape.calibration_calls
            return shape.evaluations(candidates, samples)

        induced = self.num_subsamples * self.num_prompts_per_subsample
        resampled = self.mc_top_k * self.mc_samples_per_prompt
        return StepCost("step", scoring(1 + induced), induced, scoring(resampled), resampled, 1 + self.mc_rounds,
                        ("num_prompts_per_subsample", "num_subsamples", "eval_samples"))

    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        if state.step == 0:
            return self._induce(ctx, state)
        parents = self.top(state, self.mc_top_k)
        return self._resample(ctx, state, parents)

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        unscored = [c for c in state.pool.values() if self.rank_key not in c.scores]
        if self.eval_method == "ucb":
            self._ucb(ctx, state, unscored)
        else:
            sample = self._eval_sample(ctx, state)
            for cand in unscored:
                self._score(ctx, cand, sample)
        state.frontier = [c.id for c in self.top(state, self.mc_top_k)]
        state.done = state.step >= self.mc_rounds

    # -- proposal --------------------------------------------------------------------------------
    def _induce(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        template = load_meta_prompt("ape_induce")
        texts: list[str] = []
        seeds: list[int] = []
        for _ in range(self.num_subsamples):
            demos = ctx.rng.sample(list(ctx.task.train), min(self.num_demos, len(ctx.task.train)))
            text = fill(template, demos=format_demos(demos))
            for _ in range(self.num_prompts_per_subsample):
                texts.append(text)
                seeds.append(ctx.rng.randrange(2**31))
        return self._register(ctx, state, texts, seeds, parent=None, origin="induced")

    def _resample(self, ctx: OptimizationContext, state: OptimizationState,
                  parents: list[Candidate]) -> list[Candidate]:
        template = load_meta_prompt("ape_resample")
        made: list[Candidate] = []
        for parent in parents:
            text = fill(template, instruction=parent.prompt.instruction)
            seeds = [ctx.rng.randrange(2**31) for _ in range(self.mc_samples_per_prompt)]
            made += self._register(ctx, state, [text] * len(seeds), seeds, parent=parent.id, origin="resampled")
        return made

    def _register(self, ctx: OptimizationContext, state: OptimizationState, texts: list[str], seeds: list[int],
                  *, parent: int | None, origin: str) -> list[Candidate]:
        """One candidate per usable reply (the whole reply cleaned into one instruction, as APE's templates ask)."""
        made: list[Candidate] = []
        for reply in ctx.ask_meta(texts, seeds=seeds, max_tokens=self.gen_max_tokens,
                                  temperature=self.gen_temperature, top_p=self.gen_top_p, whole_reply=True):
            for instruction in reply.items:
                cand = ctx.new_candidate(state, replace(ctx.seed_prompt, instruction=instruction), parent=parent,
                                         origin=origin)
                if cand is not None:
                    made.append(cand)
        return made

    # -- scoring ---------------------------------------------------------------------------------
    def _eval_sample(self, ctx: OptimizationContext, state: OptimizationState) -> list[Example]:
        pool = ctx.task.dev or ctx.task.train
        return [pool[i] for i in state.extra["eval_sample"]]

    def _evaluate(self, ctx: OptimizationContext, cand: Candidate, examples: list[Example]) -> EvalResult:
        if self.score_with == "likelihood":
            return ctx.evaluator.likelihood(cand.prompt, examples)
        return ctx.evaluator.evaluate(cand.prompt, examples)

    def _score(self, ctx: OptimizationContext, cand: Candidate, examples: list[Example]) -> None:
        result = self._evaluate(ctx, cand, examples)
        ctx.record_score(cand, self.rank_key, result.score, result.n)

    def _ucb(self, ctx: OptimizationContext, state: OptimizationState, arms: list[Candidate]) -> None:
        """APE's UCB bandit (reference code: pick the top-n by mean + c·sqrt(log N / n), N = total pulls)."""
        if not arms:
            return
        pool = list(ctx.task.dev or ctx.task.train)
        sums = [0.0] * len(arms)
        counts = [0] * len(arms)
        per_round = min(self.ucb_prompts_per_round, len(arms))
        for round_ in range(self.ucb_rounds):
            if round_ == 0:
                chosen = ctx.rng.sample(range(len(arms)), per_round)
            else:
                total = sum(counts) + 1e-3 * len(arms)

                def ucb(i: int, total: float = total) -> float:
                    n = counts[i] + 1e-3
                    return sums[i] / n + self.ucb_c * math.sqrt(math.log(total) / n)

                chosen = sorted(range(len(arms)), key=ucb, reverse=True)[:per_round]
            for i in chosen:
                examples = ctx.rng.sample(pool, min(self.eval_samples, len(pool)))
                result = self._evaluate(ctx, arms[i], examples)
                sums[i] += sum(result.per_example())
                counts[i] += result.n
                ctx.record_score(arms[i], self.rank_key, sums[i] / counts[i], counts[i])
