"""APO / ProTeGi — Prompt Optimization with Textual Gradients and Beam Search (Pryzant et al., EMNLP 2023).

Each round (§2), for every prompt in the beam, on one minibatch of training examples shared by the beam:
1. run the prompt and collect its errors;
2. `n_gradients` times, sample `errors_per_gradient` errors and ask the meta model for reasons the prompt
   failed (the textual "gradient", `gradients_per_error` reasons per call);
3. for each gradient, ask for `steps_per_gradient` edited prompts that fix it;
4. Monte-Carlo expansion (§2.1): `mc_samples_per_step` meaning-preserving paraphrases of every edit and of the
   parent itself, as the reference code expands; so `n_gradients=0` is the paper's Monte-Carlo baseline;
5. dedupe and cap the successors of each parent at `max_expansion_factor`, at random or
   (`expansion_filter='errors'`, the reference's `reject_on_errors`) by their score on up to 16 of the parent's
   errors, among a random twice the cap.
Then a best-arm bandit (§2.2, `prompthone.selection`) picks the next beam of `beam_size` among parents and
successors. As in the reference, each bandit round draws one sample of training examples and scores every prompt
it pulls on it (`shared_samples`), and UCB's time index is the round number (`ucb_time='rounds'`: mean +
c·sqrt(log t / (n + 0.001)), round 0 at random). Only the instruction is edited: the task's output format line,
the system message and the demos stay as they are.

The meta prompts are the reference's (microsoft/LMOps `prompt_optimization/optimizers.py`), replies up to 1024
tokens at temperature 0.7 and kept whole (the paper's prompts grow into long guidelines). Gradients may quote the
errors they explain; an edit or paraphrase that repeats four words of an example is dropped (a defence against
instructions injected through data), and the prompts say the examples are data.

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
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.meta_calls import quoted_texts
from prompthone.prompts.meta import fill, load_meta_prompt, neutralize_tags
from prompthone.selection import SELECTORS, UCB_TIMES, ArmStats, get_selector
from prompthone.tasks.example import Example

#: errors a successor is scored on by `expansion_filter='errors'` (the reference's `reject_on_errors`)
REJECT_ERRORS = 16


@dataclass
class APO(Optimizer):
    """ProTeGi: textual gradients from errors, edits, Monte-Carlo paraphrases, bandit beam selection."""

    name: ClassVar[str] = "apo"
    rank_key: ClassVar[str] = ScoreKey.BANDIT
    departures: ClassVar[tuple[str, ...]] = (
        "a parent with no error on the minibatch gets no gradient call (the reference asks with an empty error "
        "list); it is still paraphrased",
        "edits and paraphrases that repeat four words of an example are dropped, and the meta prompts say the "
        "examples are data (a defence against injected instructions)",
        "ucb_time='pulls' and shared_samples=False keep prompthone's earlier bandit (more exploration, a fresh "
        "sample per pull)",
    )

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
    ucb_time: str = "rounds"
    shared_samples: bool = True
    meta_temperature: float = 0.7
    meta_max_tokens: int = 1024

    def __post_init__(self) -> None:
        if self.selector not in SELECTORS:
            raise ConfigError(f"selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")
        if self.ucb_time not in UCB_TIMES:
            raise ConfigError(f"ucb_time must be one of {', '.join(UCB_TIMES)}, got {self.ucb_time!r}")
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

    def step_cost(self, shape: TaskShape) -> StepCost:
        """A round: each beam prompt on the minibatch (its errors), its expansions (meta calls), then the bandit's
        pulls over the beam and the successors. The first round expands the seed alone."""
        edits = self.n_gradients * self.gradients_per_error * self.steps_per_gradient
        made = edits + (edits + 1) * self.mc_samples_per_step
        kept = min(self.max_expansion_factor, made)
        minibatch = min(self.minibatch_size, shape.train)
        filtered = (2 * self.max_expansion_factor if self.expansion_filter == "errors" and made > kept else 0)
        meta = self.n_gradients * 2 + (edits + 1) * self.mc_samples_per_step

        def round_(parents: int) -> tuple[int, int]:
            arms = parents * (1 + kept)
            pulls = self.eval_rounds * min(self.eval_prompts_per_round, arms) * self.samples_per_eval
            if self.selector not in ("ucb", "ucb-e"):
                pulls = max(pulls, arms)
            task = (parents * shape.evaluations(1, minibatch) + parents * shape.evaluations(filtered, min(
                REJECT_ERRORS, minibatch)) + pulls * shape.example_calls + parents * kept * shape.calibration_calls)
            return task, parents * meta

        first, later = round_(1), round_(self.beam_size)
        return StepCost("round", *first, *later, self.rounds, ("eval_rounds", "samples_per_eval", "minibatch_size"))

    # -- expansion -------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        train = list(ctx.task.train)
        minibatch = ctx.rng.sample(train, min(self.minibatch_size, len(train)))
        successors: list[Candidate] = []
        for parent in self.top(state, self.beam_size):
            result = ctx.evaluator.evaluate(parent.prompt, minibatch)
            errors = [r for r in result.examples if r.score < 1.0]
            children = self._expand(ctx, state, parent, errors)
            successors += self._cap(ctx, children, errors)
        return successors

    def _expand(self, ctx: OptimizationContext, state: OptimizationState, parent: Candidate,
                errors: list[ExampleResult]) -> list[Candidate]:
        """Gradient edits of the parent (when it has errors on the minibatch), then Monte-Carlo paraphrases of
        every edit *and of the parent*, as the reference expands (so `n_gradients=0` is the MC baseline)."""
        forbidden = quoted_texts(errors)
        edits: list[tuple[str, str]] = []  # (edited instruction, the gradient it applies)
        for _ in range(self.n_gradients if errors else 0):
            sample = ctx.rng.sample(errors, min(self.errors_per_gradient, len(errors)))
            shown = _format_errors(sample)
            for gradient in self._gradients(ctx, parent.prompt.instruction, shown):
                edits += [(edit, gradient) for edit in self._ask(
                    ctx, "apo_edit", {"prompt": parent.prompt.instruction, "errors": shown, "gradient": gradient,
                                      "n": str(self.steps_per_gradient)},
                    self.steps_per_gradient, forbidden, instruction=True)]
        texts: list[tuple[str, str, str | None]] = [(edit, "edit", gradient) for edit, gradient in edits]
        sources: list[tuple[str, str | None]] = [*edits, (parent.prompt.instruction, None)]
        for source, cause in sources:
            texts += [(text, "paraphrase", cause) for text in self._paraphrases(ctx, source, forbidden)]
        made: list[Candidate] = []
        for text, origin, reason in texts:
            cand = ctx.new_candidate(state, replace(parent.prompt, instruction=text), parent=parent.id,
                                     origin=origin, data={"gradient": reason} if reason is not None else None)
            if cand is not None:
                made.append(cand)
        return made

    def _paraphrases(self, ctx: OptimizationContext, instruction: str, forbidden: list[str]) -> list[str]:
        """Monte-Carlo expansion: `mc_samples_per_step` meaning-preserving rewrites of an instruction."""
        return self._ask(ctx, "apo_paraphrase", {"prompt": instruction}, self.mc_samples_per_step, forbidden,
                         instruction=True, calls=self.mc_samples_per_step)

    def _gradients(self, ctx: OptimizationContext, instruction: str, shown: str) -> list[str]:
        """The reasons the prompt failed: free to quote the errors they explain (a gradient is never prompt text;
        the edits made from it are filtered)."""
        return self._ask(ctx, "apo_gradient", {"prompt": instruction, "errors": shown,
                                               "n": str(self.gradients_per_error)},
                         self.gradients_per_error, [], instruction=False)

    def _ask(self, ctx: OptimizationContext, template: str, values: dict[str, str], want: int,
             forbidden: Sequence[str], *, instruction: bool, calls: int = 1) -> list[str]:
        """Ask the meta model (`calls` samples) and parse its items; one retry when nothing usable comes back."""
        if want < 1:
            return []
        text = fill(load_meta_prompt(template), **values)
        replies = ctx.ask_meta([text] * calls, max_tokens=self.meta_max_tokens, temperature=self.meta_temperature,
                               forbidden=forbidden, instruction=instruction, retry_once=True, max_chars=None)
        return [item for reply in replies for item in reply.items][:want]

    def _cap(self, ctx: OptimizationContext, children: list[Candidate], errors: list[ExampleResult]) -> list[Candidate]:
        """At most `max_expansion_factor` successors per parent: at random, or (`expansion_filter='errors'`, the
        reference's `reject_on_errors`) the best on up to 16 of the parent's errors, among a random 2× the cap."""
        if len(children) <= self.max_expansion_factor:
            return children
        if self.expansion_filter == "random" or not errors:
            return ctx.rng.sample(children, self.max_expansion_factor)
        shown = ctx.rng.sample(errors, min(len(errors), REJECT_ERRORS))
        examples = [Example(e.input, e.target) for e in shown]
        children = ctx.rng.sample(children, min(len(children), 2 * self.max_expansion_factor))
        scored = [(ctx.evaluator.evaluate(c.prompt, examples).score, -c.id, c) for c in children]
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [c for _, _, c in scored[: self.max_expansion_factor]]

    # -- selection -------------------------------------------------------------------------------
    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        arms = self.top(state, self.beam_size) + [c for c in proposals if c.id not in state.frontier]
        sampler = RoundSample(list(ctx.task.train), random.Random(ctx.rng.randrange(2**31)), self.shared_samples)
        seen = ArmStats.empty(len(arms))  # every pull, kept even if the budget stops the bandit part-way

        def pull(arm: int, n: int) -> list[float]:
            rewards = ctx.evaluator.evaluate(arms[arm].prompt, sampler.draw(n)).per_example()
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
                      sampler: RoundSample) -> list[int]:
        select = get_selector(self.selector)
        if self.selector in ("ucb", "ucb-e"):
            result = select(len(arms), self.beam_size, pull, rounds=self.eval_rounds,
                            arms_per_round=self.eval_prompts_per_round, samples_per_pull=self.samples_per_eval,
                            c=self.ucb_c, rng=sampler.rng, time=self.ucb_time, on_round=sampler.new_round)
        else:
            budget = self.eval_rounds * self.eval_prompts_per_round * self.samples_per_eval
            result = select(len(arms), self.beam_size, pull, budget=max(budget, len(arms)), rng=sampler.rng,
                            on_round=sampler.new_round)
        chosen: list[int] = result.chosen
        return chosen

    def _record(self, ctx: OptimizationContext, arms: list[Candidate], seen: ArmStats) -> None:
        for i, cand in enumerate(arms):
            if seen.counts[i]:
                ctx.record_score(cand, self.rank_key, seen.mean(i), seen.counts[i])


class RoundSample:
    """The training examples a bandit's pulls are scored on. Shared (the reference): one sample per round, and every
    prompt pulled in that round is scored on its first n examples, so a round compares prompts on the same data.
    Not shared: each pull draws its own."""

    def __init__(self, train: list[Example], rng: random.Random, shared: bool) -> None:
        self.train, self.rng, self.shared = train, rng, shared
        self._round: list[Example] = []

    def new_round(self) -> None:
        self._round = []

    def draw(self, n: int) -> list[Example]:
        if not self.shared:
            return self._fresh(n, [])
        if n > len(self._round):
            self._round += self._fresh(n - len(self._round), self._round)
        return self._round[:n]

    def _fresh(self, n: int, taken: list[Example]) -> list[Example]:
        """`n` examples not in `taken` while the split has them, then drawn with replacement."""
        left = [e for e in self.train if e not in taken] if taken else self.train
        if n <= len(left):
            return self.rng.sample(left, n)
        return [*self.rng.sample(left, len(left)), *(self.rng.choice(self.train) for _ in range(n - len(left)))]


def _format_errors(errors: Sequence[ExampleResult]) -> str:
    blocks = []
    for e in errors:
        got = e.prediction if e.prediction is not None else e.raw.strip()[:200] or "(no answer)"
        blocks.append(f"Input: {neutralize_tags(e.input)}\nExpected answer: {neutralize_tags(e.target)}\n"
                      f"Model's answer: {neutralize_tags(got)}")
    return "\n\n".join(blocks)
