"""MIPROv2 — joint instruction and few-shot demo search (Opsahl-Ong et al., EMNLP 2024; DSPy's `MIPROv2`).

1. Demo sets (§3, `mipro_demos`): `num_demo_sets` candidate sets: the empty set, a labeled-only set, and sets
   bootstrapped from training examples the task model answers correctly with the seed prompt.
2. Grounded instruction proposal (§3, `mipro_instructions`): a dataset summary, then up to
   `num_instruction_candidates - 1` new instructions, each from the summary, demos of one set, the seed
   instruction and a random tip, at temperature `proposal_temperature`. The seed instruction is candidate 0.
3. Search (§4, Bayesian optimization): Optuna's TPE sampler (multivariate, seeded from the run's rng) over two
   categorical parameters, the instruction index and the demo-set index. The seed pair (0, 0) is scored on the
   whole dev split and told to the study first. Each trial is one driver step: ask the study for a pair, score
   that prompt on a fresh random minibatch of `minibatch_size` dev examples, tell the study. After every
   `minibatch_full_eval_steps` trials and after the last, the pair with the best mean minibatch score that has no
   full score yet is scored on the whole dev split (score key `dev_full`, the method's ranking) and that score
   is told to the study as an extra trial. When the dev split is no larger than a minibatch, every trial is a
   full evaluation (DSPy's `minibatch=False`), and a pair already fully scored is not scored again.

Defaults are DSPy's `auto="light"` for one prompt with demos: 6 demo sets, 3 instruction candidates
(half of n = 6), 10 trials (max(2·2·log2 6, 1.5·6)); and DSPy's other defaults: up to 4 bootstrapped demos and
4 demos in all, minibatches of 35, a full evaluation every 5 trials, 10 examples per summary batch, 3 demos in
the proposer's context, temperature 1.0. Differences: light mode also subsamples the dev set to 100 examples
(we use the task's dev split as given); we read at most `max_summary_batches` = 3 batches for the summary (DSPy up
to 10); bootstrapping asks the seed prompt (DSPy's teacher also carries labeled demos); we make n - 1 proposal
calls (DSPy makes n and overwrites the first with the seed instruction); with both demo limits at 0 the search is
over instructions only, and 3 bootstrapped demos still ground the proposals, as in DSPy.

Proposals are kept whole, as DSPy keeps them (no length cut); the meta model's replies are capped at
`meta_max_tokens` = 1024 (DSPy leaves the cap to the proposer model's own settings; a cap bounds a small model's
runaway reply), and a proposal that repeats 12 words of a training example in a row is dropped (a defence
against instructions injected through data, which DSPy does not have; a grounded instruction may still cite the
examples).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from prompthone.errors import ConfigError
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.meta_calls import quoted_texts
from prompthone.optimizers.mipro_demos import DemoSet, SeedJudge, make_demo_sets
from prompthone.optimizers.mipro_instructions import DatasetSummary, Proposal, propose_instructions, summarize_dataset
from prompthone.prompts.meta import COPIED_RUN
from prompthone.tasks.example import Example

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: the score key of the running mean of a pair's minibatch scores (the key of full dev scores is `MIPRO.rank_key`)
MINIBATCH_KEY = ScoreKey.MINIBATCH


@dataclass
class _Search:
    """What the search carries between trials (kept in `state.extra['mipro']`)."""

    demo_sets: list[DemoSet]
    instructions: list[Proposal]
    study: optuna.Study
    distributions: dict[str, optuna.distributions.BaseDistribution]
    dev: list[Example]
    minibatch: bool
    params: dict[int, dict[str, int]] = field(default_factory=dict)  # candidate id → its (first) pair
    minibatch_scores: dict[int, list[float]] = field(default_factory=dict)
    trials: int = 0
    pending: tuple[optuna.trial.Trial, Candidate] | None = None


def new_study(seed: int) -> optuna.Study:
    """An in-memory maximizing study with DSPy's sampler: TPE, multivariate, seeded. Optuna's INFO logs are off."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE is marked experimental in older Optuna releases
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.create_study(direction="maximize", sampler=sampler)


@dataclass
class MIPRO(Optimizer):
    """Joint instruction + few-shot demo search: bootstrapped demo sets, grounded proposals, TPE over the pairs."""

    name: ClassVar[str] = "mipro"
    rank_key: ClassVar[str] = ScoreKey.DEV_FULL
    full_dev_keys: ClassVar[tuple[str, ...]] = (ScoreKey.DEV_FULL,)
    departures: ClassVar[tuple[str, ...]] = (
        "the dev split is used as given (DSPy's light mode subsamples it to 100 examples)",
        "the dataset summary reads at most max_summary_batches=3 batches (DSPy up to 10)",
        "bootstrapped demos come from the seed prompt alone (DSPy's teacher also carries labeled demos)",
        "n - 1 proposal calls (DSPy makes n and overwrites the first with the seed instruction)",
        "replies are capped at meta_max_tokens=1024 (DSPy leaves the cap to the proposer model)",
        "a proposal repeating 12 words of a training example is dropped (a defence against injected instructions)",
    )

    num_demo_sets: int = 6
    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 4
    num_instruction_candidates: int = 3
    num_trials: int = 10
    minibatch_size: int = 35
    minibatch_full_eval_steps: int = 5
    view_data_batch_size: int = 10
    max_summary_batches: int = 3
    demos_in_context: int = 3
    proposal_temperature: float = 1.0
    meta_max_tokens: int = 1024
    data_aware: bool = True
    tip_aware: bool = True
    fewshot_aware: bool = True

    def __post_init__(self) -> None:
        self.require_positive("num_demo_sets", "num_instruction_candidates", "num_trials", "minibatch_size",
                              "minibatch_full_eval_steps", "view_data_batch_size", "max_summary_batches",
                              "meta_max_tokens")
        for knob in ("max_bootstrapped_demos", "max_labeled_demos", "demos_in_context"):
            if getattr(self, knob) < 0:
                raise ConfigError(f"{knob} must be ≥ 0, got {getattr(self, knob)}")
        if self.proposal_temperature < 0:
            raise ConfigError(f"proposal_temperature must be ≥ 0, got {self.proposal_temperature}")

    def step_cost(self, shape: TaskShape) -> StepCost:
        """Setup: bootstrapping asks the seed prompt about training examples until each bootstrapped set has its
        demos (counted as if it answered half of them right, at most all of them), the dataset summary and the
        proposals (meta calls), the seed on the whole dev split; then per trial one minibatch, and every
        `minibatch_full_eval_steps` trials one whole-dev evaluation (spread over the trials here)."""
        dev = shape.dev or shape.train
        minibatch = dev if dev <= self.minibatch_size else self.minibatch_size
        full = 0 if dev <= self.minibatch_size else -(-shape.evaluations(1, dev) // self.minibatch_full_eval_steps)
        judged = min(shape.train, 2 * max(1, self.num_demo_sets - 2) * max(1, self.max_bootstrapped_demos))
        bootstrap = 0 if self.zero_shot and self.num_instruction_candidates < 2 else shape.evaluations(1, judged)
        proposals = self.num_instruction_candidates - 1
        meta = proposals + (self.max_summary_batches + 1 if self.data_aware and proposals else 0)
        trial = shape.evaluations(1, minibatch) + full
        return StepCost("trial", bootstrap + shape.evaluations(1, dev) + trial, meta, trial, 0, self.num_trials,
                        ("num_demo_sets", "minibatch_size"))

    @property
    def zero_shot(self) -> bool:
        """Both demo limits at 0: search instructions only (DSPy's zero-shot optimization)."""
        return self.max_bootstrapped_demos == 0 and self.max_labeled_demos == 0

    # -- setup: demo sets, instructions, the seed's full score, the study --------------------------------------
    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        train = list(ctx.task.train)
        dev = list(ctx.task.dev or ctx.task.train)
        if not train:
            raise ConfigError(f"mipro needs training examples to bootstrap demos from; task {ctx.task.name!r} has none")
        seed = state.pool[0]
        seed.data.update({"instruction_index": 0, "demo_set_index": 0, "demo_set_kind": "zero-shot"})
        demo_sets = self._demo_sets(ctx, train)
        summary = self._summary(ctx, train)
        instructions = self._instructions(ctx, train, demo_sets, summary)
        ctx.score(seed, dev, self.rank_key)  # DSPy's "default program score", the study's first trial
        import optuna

        space = 1 if self.zero_shot else len(demo_sets)
        distributions: dict[str, optuna.distributions.BaseDistribution] = {
            "instruction": optuna.distributions.CategoricalDistribution(list(range(len(instructions)))),
            "demo_set": optuna.distributions.CategoricalDistribution(list(range(space)))}
        study = new_study(ctx.rng.randrange(2**31))
        study.add_trial(optuna.trial.create_trial(params={"instruction": 0, "demo_set": 0},
                                                  distributions=distributions, value=seed.scores[self.rank_key]))
        search = _Search(demo_sets, instructions, study, distributions, dev,
                         minibatch=self.minibatch_size < len(dev), params={seed.id: {"instruction": 0, "demo_set": 0}})
        state.extra["mipro"] = search
        state.frontier = [seed.id]
        log.info("mipro: %d instructions × %d demo sets, seed dev %.3f, %s trials", len(instructions), space,
                 seed.scores[self.rank_key], "minibatch" if search.minibatch else "full-dev")

    def _demo_sets(self, ctx: OptimizationContext, train: list[Example]) -> list[DemoSet]:
        judge = SeedJudge(ctx.evaluator, ctx.seed_prompt, train)
        if self.zero_shot:  # DSPy still bootstraps (3 demos, no labeled ones) to ground the proposals
            if not (self.fewshot_aware and self.num_instruction_candidates > 1):
                return [DemoSet((), 0, "zero-shot")]
            sets = make_demo_sets(train, judge, ctx.rng, num_sets=self.num_demo_sets,
                                  max_bootstrapped=self.demos_in_context, max_labeled=0)
        else:
            sets = make_demo_sets(train, judge, ctx.rng, num_sets=self.num_demo_sets,
                                  max_bootstrapped=self.max_bootstrapped_demos, max_labeled=self.max_labeled_demos)
        correct = sum(judge.verdicts.values())
        ctx.record_event({"event": "demo_sets", "sets": [s.to_dict() for s in sets], "searched": not self.zero_shot,
                          "train_evaluated": len(judge.verdicts), "train_correct": correct})
        log.info("mipro: %d demo sets; the seed prompt answered %d of %d training examples evaluated correctly",
                 len(sets), correct, len(judge.verdicts))
        return sets

    def _summary(self, ctx: OptimizationContext, train: list[Example]) -> DatasetSummary | None:
        if not self.data_aware or self.num_instruction_candidates < 2:
            return None
        summary = summarize_dataset(ctx.meta_model, train, ctx.rng, batch_size=self.view_data_batch_size,
                                    max_batches=self.max_summary_batches, temperature=self.proposal_temperature,
                                    max_tokens=self.meta_max_tokens)
        ctx.record_event({"event": "dataset_summary", "summary": summary.summary,
                          "observations": list(summary.observations), "complete_batches": summary.complete_batches})
        return summary

    def _instructions(self, ctx: OptimizationContext, train: list[Example], demo_sets: list[DemoSet],
                      summary: DatasetSummary | None) -> list[Proposal]:
        if self.num_instruction_candidates < 2:
            return [Proposal(ctx.seed_prompt.instruction)]
        proposals, dropped = propose_instructions(
            ctx.meta_model, ctx.rng, seed_instruction=ctx.seed_prompt.instruction,
            summary=summary.summary if summary else "", demo_sets=demo_sets, n=self.num_instruction_candidates,
            forbidden=quoted_texts(train), temperature=self.proposal_temperature,
            max_tokens=self.meta_max_tokens, demos_in_context=self.demos_in_context, tip_aware=self.tip_aware,
            fewshot_aware=self.fewshot_aware, max_chars=None, quote_run=COPIED_RUN)
        ctx.record_event({"event": "instructions", "dropped": dropped,
                          "instructions": [{"index": i, "instruction": p.instruction, "tip": p.tip,
                                            "demo_set": p.demo_set} for i, p in enumerate(proposals)]})
        return proposals

    @staticmethod
    def _search(state: OptimizationState) -> _Search:
        search = state.extra.get("mipro")
        assert isinstance(search, _Search), "start() was not called"
        return search

    # -- one trial -----------------------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        s = self._search(state)
        trial = s.study.ask(s.distributions)
        cand, new = self._pair(ctx, state, s, trial.params["instruction"], trial.params["demo_set"])
        s.pending = (trial, cand)
        return [cand] if new else []

    def _pair(self, ctx: OptimizationContext, state: OptimizationState, s: _Search, instruction: int,
              demo_set: int) -> tuple[Candidate, bool]:
        """The candidate of one (instruction, demo set) pair, registered the first time its prompt is met."""
        proposal, demos = s.instructions[instruction], s.demo_sets[demo_set]
        prompt = replace(ctx.seed_prompt, instruction=proposal.instruction, demos=demos.demos)
        data = {"instruction_index": instruction, "demo_set_index": demo_set, "demo_set_kind": demos.kind,
                "bootstrapped_demos": demos.bootstrapped, "tip": proposal.tip}
        cand = ctx.new_candidate(state, prompt, parent=None, origin="mipro", data=data)
        new = cand is not None
        if cand is None:  # an identical prompt exists (the seed pair, or two identical demo sets)
            key = prompt.key()
            cand = next(c for c in state.pool.values() if c.prompt.key() == key)
        s.params.setdefault(cand.id, {"instruction": instruction, "demo_set": demo_set})
        return cand, new

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        s = self._search(state)
        assert s.pending is not None, "select() without propose()"
        trial, cand = s.pending
        s.pending = None
        if s.minibatch:
            examples = ctx.rng.sample(s.dev, self.minibatch_size)
            result = ctx.evaluator.evaluate(cand.prompt, examples)
            runs = s.minibatch_scores.setdefault(cand.id, [])
            runs.append(result.score)
            ctx.record_score(cand, MINIBATCH_KEY, sum(runs) / len(runs), len(runs) * self.minibatch_size)
            score, n = result.score, result.n
        else:
            if self.rank_key not in cand.scores:
                ctx.score(cand, s.dev, self.rank_key)
            score, n = cand.scores[self.rank_key], len(s.dev)
        s.study.tell(trial, score)
        s.trials += 1
        ctx.record_event({"event": "trial", "trial": s.trials, "params": dict(trial.params), "candidate": cand.id,
                          "score": score, "n": n, "full": not s.minibatch,
                          "mean": cand.scores.get(MINIBATCH_KEY if s.minibatch else self.rank_key)})
        log.info("mipro trial %d/%d: instruction %d, demo set %d → %.3f on %d", s.trials, self.num_trials,
                 trial.params["instruction"], trial.params["demo_set"], score, n)
        if s.minibatch and (s.trials % self.minibatch_full_eval_steps == 0 or s.trials >= self.num_trials):
            self._full_evaluation(ctx, state, s)
        state.frontier = [c.id for c in self.top(state, 1)]
        state.done = s.trials >= self.num_trials

    def _full_evaluation(self, ctx: OptimizationContext, state: OptimizationState, s: _Search) -> None:
        """Score the best-averaging pair without a full score on the whole dev split, and tell the study."""
        import optuna

        full = {c.id for c in state.ranked(self.rank_key)}
        waiting = [c for c in state.ranked(MINIBATCH_KEY) if c.id not in full]
        if not waiting:  # every pair tried so far is fully scored (DSPy would raise here)
            ctx.record_event({"event": "full_eval", "trial": s.trials, "candidate": None})
            return
        best = waiting[0]
        ctx.score(best, s.dev, self.rank_key)
        s.study.add_trial(optuna.trial.create_trial(params=s.params[best.id], distributions=s.distributions,
                                                    value=best.scores[self.rank_key]))
        ctx.record_event({"event": "full_eval", "trial": s.trials, "candidate": best.id, "params": s.params[best.id],
                          "minibatch_mean": best.scores[MINIBATCH_KEY], "score": best.scores[self.rank_key]})
        log.info("mipro full evaluation after trial %d: candidate %d (minibatch mean %.3f) → %.3f on dev", s.trials,
                 best.id, best.scores[MINIBATCH_KEY], best.scores[self.rank_key])

    def top(self, state: OptimizationState, k: int) -> list[Candidate]:
        """Fully scored pairs by dev score, then pairs with minibatch scores only, by their mean.

        The seed is fully scored before the first trial, so after any step the first candidate carries a
        `dev_full` score; when the budget ran out earlier, the minibatch-only pairs still reach the finalists.
        """
        full = state.ranked(self.rank_key)
        seen = {c.id for c in full}
        return [*full, *(c for c in state.ranked(MINIBATCH_KEY) if c.id not in seen)][:k]
