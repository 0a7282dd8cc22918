"""APO / ProTeGi — Prompt Optimization with Textual Gradients and Beam Search (Pryzant et al., EMNLP 2023).

Each round (§2), for every prompt in the beam, on one minibatch of training examples shared by the beam:
1. run the prompt and collect its errors;
2. `n_gradients` times, sample `errors_per_gradient` errors and ask the meta model for reasons the prompt
   failed (the textual "gradient", `gradients_per_error` reasons per call);
3. for each gradient, ask for `steps_per_gradient` edited prompts that fix it;
4. expand each edit with `mc_samples_per_step` meaning-preserving paraphrases (Monte-Carlo, §2.1);
5. dedupe and cap the successors of each parent at `max_expansion_factor`, at random or by their score
   on the parent's errors (`expansion_filter='errors'`).
Then a best-arm bandit (§2.2, `prompthone.selection`) picks the next beam of `beam_size` among parents and
successors, pulling prompts on fresh training examples. Only the instruction is edited: the task's output
format line, the system message and the demos stay as they are.

Defaults are the paper's: 6 rounds, beam 4, minibatch 64, 4 gradients × 4 errors, 1 edit per gradient,
2 paraphrases, expansion cap 8, UCB with 8 rounds × 8 prompts × 32 examples (2048 pulls per selection).
The elimination selectors (successive rejects/halving, brute force) get that same number of pulls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from prompthone.errors import BudgetExhausted, ConfigError
from prompthone.evaluation.evaluator import ExampleResult
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.meta_calls import quoted_texts
from prompthone.prompts.meta import fill, load_meta_prompt, neutralize_tags
from prompthone.selection import SELECTORS, ArmStats, get_selector
from prompthone.tasks.example import Example


@dataclass
class APO(Optimizer):
    """ProTeGi: textual gradients from errors, edits, Monte-Carlo paraphrases, bandit beam selection."""

    name: ClassVar[str] = "apo"
    rank_key: ClassVar[str] = ScoreKey.BANDIT

    rounds: int = 6
    beam_size: int = 4
    minibatch_size: int = 64
    n_gradients: int = 4
    errors_per_gradient: int = 4
    gradients_per_error: int = 1
    steps_per_gradient: int = 1
    mc_samples_per_step: int = 2
    max_expansion_factor: int = 8
    expansion_filter: str = "random"
    selector: str = "ucb"
    eval_rounds: int = 8
    eval_prompts_per_round: int = 8
    samples_per_eval: int = 32
    ucb_c: float = 1.0
    meta_temperature: float = 0.7
    meta_max_tokens: int = 200

    def __post_init__(self) -> None:
        if self.selector not in SELECTORS:
            raise ConfigError(f"selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")
        if self.expansion_filter not in ("random", "errors"):
            raise ConfigError(f"expansion_filter must be 'random' or 'errors', got {self.expansion_filter!r}")
        self.require_positive("rounds", "beam_size", "minibatch_size", "eval_rounds", "eval_prompts_per_round",
                              "samples_per_eval")

    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        if not ctx.task.train:
            raise ConfigError(f"APO needs training examples; task {ctx.task.name!r} has none")

    def top(self, state: OptimizationState, k: int) -> list[Candidate]:
        """The current beam, best first (the bandit's order)."""
        return [state.pool[i] for i in state.frontier[:k]]

    # -- expansion -------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        train = list(ctx.task.train)
        minibatch = ctx.rng.sample(train, min(self.minibatch_size, len(train)))
        successors: list[Candidate] = []
        for parent in self.top(state, self.beam_size):
            result = ctx.evaluator.evaluate(parent.prompt, minibatch)
            errors = [r for r in result.examples if r.score < 1.0]
            if not errors:
                continue
            children = self._expand(ctx, state, parent, errors)
            successors += self._cap(ctx, children, errors)
        return successors

    def _expand(self, ctx: OptimizationContext, state: OptimizationState, parent: Candidate,
                errors: list[ExampleResult]) -> list[Candidate]:
        forbidden = quoted_texts(errors)
        made: list[Candidate] = []
        for _ in range(self.n_gradients):
            sample = ctx.rng.sample(errors, min(self.errors_per_gradient, len(errors)))
            shown = _format_errors(sample)
            for gradient in self._gradients(ctx, parent.prompt.instruction, shown, forbidden):
                edits = self._ask(ctx, "apo_edit", {"prompt": parent.prompt.instruction, "errors": shown,
                                                    "gradient": gradient, "n": str(self.steps_per_gradient)},
                                  self.steps_per_gradient, forbidden, instruction=True)
                for edit in edits:
                    for text in [edit, *self._paraphrases(ctx, edit, forbidden)]:
                        cand = ctx.new_candidate(state, replace(parent.prompt, instruction=text), parent=parent.id,
                                                 origin="edit" if text == edit else "paraphrase",
                                                 data={"gradient": gradient})
                        if cand is not None:
                            made.append(cand)
        return made

    def _paraphrases(self, ctx: OptimizationContext, instruction: str, forbidden: list[str]) -> list[str]:
        """Monte-Carlo expansion: `mc_samples_per_step` meaning-preserving rewrites of an edited instruction."""
        return self._ask(ctx, "apo_paraphrase", {"prompt": instruction}, self.mc_samples_per_step, forbidden,
                         instruction=True, calls=self.mc_samples_per_step)

    def _gradients(self, ctx: OptimizationContext, instruction: str, shown: str, forbidden: list[str]) -> list[str]:
        return self._ask(ctx, "apo_gradient", {"prompt": instruction, "errors": shown,
                                               "n": str(self.gradients_per_error)},
                         self.gradients_per_error, forbidden, instruction=False)

    def _ask(self, ctx: OptimizationContext, template: str, values: dict[str, str], want: int,
             forbidden: Sequence[str], *, instruction: bool, calls: int = 1) -> list[str]:
        """Ask the meta model (`calls` samples) and parse its items; one retry when nothing usable comes back."""
        if want < 1:
            return []
        text = fill(load_meta_prompt(template), **values)
        replies = ctx.ask_meta([text] * calls, max_tokens=self.meta_max_tokens, temperature=self.meta_temperature,
                               forbidden=forbidden, instruction=instruction, retry_once=True)
        return [item for reply in replies for item in reply.items][:want]

    def _cap(self, ctx: OptimizationContext, children: list[Candidate], errors: list[ExampleResult]) -> list[Candidate]:
        """At most `max_expansion_factor` successors per parent: random, or the best on the parent's errors."""
        if len(children) <= self.max_expansion_factor:
            return children
        if self.expansion_filter == "random":
            return ctx.rng.sample(children, self.max_expansion_factor)
        examples = [Example(e.input, e.target) for e in errors]
        scored = [(ctx.evaluator.evaluate(c.prompt, examples).score, -c.id, c) for c in children]
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [c for _, _, c in scored[: self.max_expansion_factor]]

    # -- selection -------------------------------------------------------------------------------
    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        arms = self.top(state, self.beam_size) + [c for c in proposals if c.id not in state.frontier]
        train = list(ctx.task.train)
        sampler = random.Random(ctx.rng.randrange(2**31))
        seen = ArmStats.empty(len(arms))  # every pull, kept even if the budget stops the bandit part-way

        def pull(arm: int, n: int) -> list[float]:
            examples = sampler.sample(train, n) if n <= len(train) else [sampler.choice(train) for _ in range(n)]
            rewards = ctx.evaluator.evaluate(arms[arm].prompt, examples).per_example()
            seen.add(arm, rewards)
            return rewards

        try:
            chosen = self._run_selector(arms, pull, sampler)
        except BudgetExhausted:
            # Keep what the pulls so far say: the best-measured arms, then the old beam for unmeasured slots.
            measured = seen.ranked(i for i in range(len(arms)) if seen.counts[i])
            ids = [arms[i].id for i in measured] + state.frontier
            state.frontier = list(dict.fromkeys(ids))[: self.beam_size]
            raise
        finally:
            self._record(ctx, arms, seen)
        state.frontier = [arms[i].id for i in chosen]
        state.done = state.step + 1 >= self.rounds

    def _run_selector(self, arms: list[Candidate], pull: Callable[[int, int], list[float]],
                      rng: random.Random) -> list[int]:
        select = get_selector(self.selector)
        if self.selector in ("ucb", "ucb-e"):
            result = select(len(arms), self.beam_size, pull, rounds=self.eval_rounds,
                            arms_per_round=self.eval_prompts_per_round, samples_per_pull=self.samples_per_eval,
                            c=self.ucb_c, rng=rng)
        else:
            budget = self.eval_rounds * self.eval_prompts_per_round * self.samples_per_eval
            result = select(len(arms), self.beam_size, pull, budget=max(budget, len(arms)), rng=rng)
        chosen: list[int] = result.chosen
        return chosen

    def _record(self, ctx: OptimizationContext, arms: list[Candidate], seen: ArmStats) -> None:
        for i, cand in enumerate(arms):
            if seen.counts[i]:
                ctx.record_score(cand, self.rank_key, seen.mean(i), seen.counts[i])


def _format_errors(errors: Sequence[ExampleResult]) -> str:
    blocks = []
    for e in errors:
        got = e.prediction if e.prediction is not None else e.raw.strip()[:200] or "(no answer)"
        blocks.append(f"Input: {neutralize_tags(e.input)}\nExpected answer: {neutralize_tags(e.target)}\n"
                      f"Model's answer: {neutralize_tags(got)}")
    return "\n\n".join(blocks)
