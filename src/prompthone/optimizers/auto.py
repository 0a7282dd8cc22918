"""`auto`, the default method: instruction × demo set × label calibration, raced on growing dev slices to the budget.

1. **Pool** (`start`). Demo sets (`auto_pool`): zero-shot, one label-balanced labeled set per size in
   `demo_sizes`, and `bootstrapped_sets` balanced sets of training examples the seed prompt answers correctly
   (MIPROv2's kinds, Opsahl-Ong et al. 2024; Wan et al. 2024, "Teach better or show smarter": exemplar choice
   rivals instruction search and the two together do best). Instructions: the seed and up to
   `num_instructions - 1` grounded proposals by the meta model (MIPROv2's proposer: a dataset summary, demos, a
   tip; `mipro_instructions`). Calibrations, when the task is label-scored: none, contextual (Zhao et al. 2021,
   three content-free calls per prompt) and batch (Zhou et al. 2024). An **arm** is one (instruction, demo set,
   calibration); a **base** is one (instruction, demo set), the prompt text the model is sent. The calibrations of
   a base share its calls: its label log-probabilities are read once per calibration, for free.
2. **Fit to the budget.** `selection.racing.plan_rungs` sizes a successive-halving race (η = `eta`) whose slices
   end with the largest dev prefix the task-call budget pays for, every slice at least `min_slice` examples. When
   the whole pool cannot be raced on that, instructions and demo sets are dropped (the last proposed first,
   alternately) before any proposal is paid for; the event `pool` says what was kept and why.
3. **Race** (one rung per step; resumable after each). Every active arm is read on the same dev prefix (dev in a
   label-stratified order), so arms are compared example by example; a base promoted to a bigger slice pays only
   for the examples it has not seen. The best ⌈active/η⌉ arms go on (ties: the earlier arm, i.e. the simpler
   prompt: the seed, zero-shot, uncalibrated first). The race stops at `finalists` arms; the event `rung` lists each
   arm's score and whether it was kept or dropped. TRIPLE (Shi et al. 2024) showed successive halving picks prompts
   well under a fixed budget.
4. **Candidates.** Each base is one candidate whose prompt carries its best calibration; the seed's calibrated
   forms are candidates of their own, so the run's comparison with the seed is always with the seed as written.
   When the last slice is the whole dev split, the finalization reuses the race's scores (no second pass).

Published: the demo kinds and grounded proposals (MIPROv2), both calibrations, successive halving for prompt
selection under a budget (TRIPLE-SH). Ours: racing the cross product with calibrations as nearly free arms;
label-balanced demo sets; the pool trimmed to the budget; and the **batch prior estimated from the dev inputs the
race has scored** (their labels are never read; Zhou et al. estimate it from the very batch being classified), so
it costs no call. The found prompt carries the prior from the dev inputs it was last scored on, never a test input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import ClassVar

from prompthone.errors import ConfigError
from prompthone.evaluation.evaluator import EvalResult, ExampleResult
from prompthone.optimizers.auto_pool import demo_sets, stratified_order
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.optimizers.meta_calls import quoted_texts
from prompthone.optimizers.mipro_demos import DemoSet, SeedJudge
from prompthone.optimizers.mipro_instructions import Proposal, propose_instructions, summarize_dataset
from prompthone.prompts.calibration import CALIBRATIONS, Calibration
from prompthone.prompts.prompt import Prompt
from prompthone.selection.racing import RacePlan, keep_count, plan_rungs
from prompthone.tasks.example import Example

log = logging.getLogger(__name__)

#: the score key of an arm's score on the dev prefix it last reached (the method's ranking)
RACE_KEY = "race"
#: bootstrapped demos shown to the meta model with each proposal (MIPROv2's default)
DEMOS_IN_CONTEXT = 3


@dataclass
class _Base:
    """One prompt text the race sends: its candidate per calibration, and its raw results on the dev order."""

    prompt: Prompt
    data: dict[str, object]
    rows: list[ExampleResult] = field(default_factory=list)
    priors: dict[str, Calibration] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)  # calibration → candidate id (the seed's: one each)


@dataclass
class _Race:
    """What the race carries between rungs (kept in `state.extra['auto']`)."""

    order: list[Example]
    bases: list[_Base]
    arms: list[tuple[int, str]]  # (base index, calibration)
    sizes: tuple[int, ...]
    active: list[int]
    rung: int = 0
    reached: dict[int, int] = field(default_factory=dict)  # candidate id → the last rung it was scored at


@dataclass
class Auto(Optimizer):
    """Ours, from published parts: MIPROv2 demo sets and proposals × contextual/batch calibration, raced by
    successive halving (TRIPLE) within the budget; the batch prior comes from the dev inputs raced on."""

    name: ClassVar[str] = "auto"
    rank_key: ClassVar[str] = RACE_KEY

    num_instructions: int = 4
    demo_sizes: str = "4,8"
    bootstrapped_sets: int = 1
    calibrations: str = "none,contextual,batch"
    eta: int = 2
    min_slice: int = 8
    finalists: int = 2
    max_judged: int = 24
    view_data_batch_size: int = 10
    max_summary_batches: int = 2
    proposal_temperature: float = 1.0
    meta_max_tokens: int = 150

    def __post_init__(self) -> None:
        self.require_positive("num_instructions", "min_slice", "finalists", "view_data_batch_size",
                              "max_summary_batches", "meta_max_tokens")
        if self.eta < 2:
            raise ConfigError(f"eta must be ≥ 2, got {self.eta}")
        if self.bootstrapped_sets < 0 or self.max_judged < 0:
            raise ConfigError("bootstrapped_sets and max_judged must be ≥ 0")
        self.sizes()
        self.calibration_methods()

    def sizes(self) -> tuple[int, ...]:
        """`demo_sizes` as numbers ("4,8" → (4, 8); "" or "0": zero-shot only)."""
        try:
            sizes = tuple(int(x) for x in str(self.demo_sizes).replace(" ", "").split(",") if x)
        except ValueError:
            raise ConfigError(f"demo_sizes must be comma-separated counts such as '4,8', got {self.demo_sizes!r}"
                              ) from None
        if any(k < 0 for k in sizes):
            raise ConfigError(f"demo_sizes must be ≥ 0, got {self.demo_sizes!r}")
        return tuple(k for k in sizes if k > 0)

    def calibration_methods(self) -> tuple[str, ...]:
        """`calibrations` as a tuple of known methods, in the order given."""
        methods = tuple(dict.fromkeys(x for x in str(self.calibrations).replace(" ", "").split(",") if x))
        unknown = [m for m in methods if m not in CALIBRATIONS]
        if unknown or not methods:
            raise ConfigError(f"calibrations must list some of {', '.join(CALIBRATIONS)}, got {self.calibrations!r}")
        return methods

    # -- the pool ----------------------------------------------------------------------------------------------
    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        labels = ctx.task.labels if ctx.evaluator.mode == "labels" else None
        dev = list(ctx.task.dev or ctx.task.train)
        if not dev:
            raise ConfigError(f"auto needs dev (or training) examples to race on; task {ctx.task.name!r} has none")
        order = [dev[i] for i in stratified_order(dev, labels, ctx.rng)]
        calibrations = self._calibrations(ctx)
        sets = self._demo_sets(ctx, labels)
        n_instructions, sets = self._fit(ctx, calibrations, len(order), sets)
        instructions = self._instructions(ctx, sets, n_instructions)
        bases = [_Base(replace(ctx.seed_prompt, calibration=None, instruction=p.instruction, demos=d.demos),
                       {"instruction_index": i, "tip": p.tip, "demo_set_index": j, "demo_set_kind": d.kind,
                        "demos": len(d.demos), "bootstrapped_demos": d.bootstrapped})
                 for j, d in enumerate(sets) for i, p in enumerate(instructions)]
        plan = self._plan(ctx, len(bases) * len(calibrations), len(bases), len(order), calibrations)
        while plan is None and len(bases) > 1:  # the proposals cost more of a shared call budget than estimated
            bases.pop()
            plan = self._plan(ctx, len(bases) * len(calibrations), len(bases), len(order), calibrations)
        if plan is None:  # not even the seed's race fits: score it on what the budget allows
            plan = RacePlan((min(self.min_slice, len(order)),), 0)
        if ctx.run_calibration != "none" and state.pool[0].prompt.calibration is not None:
            bases[0].priors[ctx.run_calibration] = state.pool[0].prompt.calibration
        arms = [(b, c) for b in range(len(bases)) for c in calibrations]
        race = _Race(order, bases, arms, plan.sizes, list(range(len(arms))))
        state.extra["auto"] = race
        state.frontier = [0]
        ctx.record_event({"event": "race", "bases": len(bases), "arms": len(arms), "calibrations": list(calibrations),
                          "sizes": list(plan.sizes), "planned_calls": plan.cost, "calls_left": ctx.calls_left()})
        log.info("auto: %d prompts × %d calibrations = %d arms, rungs on %s dev examples", len(bases),
                 len(calibrations), len(arms), list(plan.sizes))

    def _calibrations(self, ctx: OptimizationContext) -> tuple[str, ...]:
        """The calibrations to race: none without label scoring; only the run's own when the run names one."""
        if ctx.evaluator.mode != "labels":
            return ("none",)
        return (ctx.run_calibration,) if ctx.run_calibration != "none" else self.calibration_methods()

    def _demo_sets(self, ctx: OptimizationContext, labels: tuple[str, ...] | None) -> list[DemoSet]:
        train = list(ctx.task.train)
        judge = SeedJudge(ctx.evaluator, replace(ctx.seed_prompt, calibration=None), train)
        budget = ctx.calls_left()
        judged = self.max_judged if budget is None else min(self.max_judged, budget // 10)
        sets = demo_sets(train, labels, self.sizes() if train else (), self.bootstrapped_sets, judge, ctx.rng,
                         judged)
        ctx.record_event({"event": "demo_sets", "sets": [s.to_dict() for s in sets],
                          "train_evaluated": len(judge.verdicts), "train_correct": sum(judge.verdicts.values())})
        return sets

    def _plan(self, ctx: OptimizationContext, arms: int, bases: int, n_dev: int, calibrations: tuple[str, ...],
              reserve: int = 0) -> RacePlan | None:
        """The race of `arms` arms over `bases` prompts that fits the calls left, less `reserve`."""
        per_base = 3 if "contextual" in calibrations and ctx.run_calibration == "none" else 0
        left = ctx.calls_left()
        return plan_rungs(arms, bases, n_dev, None if left is None else max(0, left - reserve), eta=self.eta,
                          min_slice=self.min_slice, finalists=self.finalists, per_base=per_base)

    def _fit(self, ctx: OptimizationContext, calibrations: tuple[str, ...], n_dev: int,
             sets: list[DemoSet]) -> tuple[int, list[DemoSet]]:
        """The number of instructions and the demo sets whose race fits the budget, before any proposal is paid
        for: drop the last instruction or the last demo set, alternately (the larger dimension first), until the
        race's first slice holds `min_slice` examples. Where meta calls share the call limit, the proposals'
        calls are set aside first."""
        def fits(n: int, d: int) -> bool:
            reserve = 0 if ctx.calls_left("meta") is None or n < 2 else n + self.max_summary_batches
            return self._plan(ctx, n * d * len(calibrations), n * d, n_dev, calibrations, reserve) is not None

        n_instructions, kept = self.num_instructions, list(sets)
        while not fits(n_instructions, len(kept)) and n_instructions * len(kept) > 1:
            if n_instructions >= len(kept) and n_instructions > 1:
                n_instructions -= 1
            else:
                kept.pop()
        trimmed = (n_instructions, len(kept)) != (self.num_instructions, len(sets))
        ctx.record_event({"event": "pool", "instructions": n_instructions, "demo_sets": len(kept),
                          "asked": {"instructions": self.num_instructions, "demo_sets": len(sets)},
                          "calls_left": ctx.calls_left(),
                          "reason": "trimmed so that the race's first slice holds min_slice examples" if trimmed
                          else "fits the budget"})
        return n_instructions, kept

    def _instructions(self, ctx: OptimizationContext, sets: list[DemoSet], n: int) -> list[Proposal]:
        if n < 2:
            return [Proposal(ctx.seed_prompt.instruction)]
        train = list(ctx.task.train)
        summary = summarize_dataset(ctx.meta_model, train, ctx.rng, batch_size=self.view_data_batch_size,
                                    max_batches=self.max_summary_batches, temperature=self.proposal_temperature,
                                    max_tokens=self.meta_max_tokens) if train else None
        proposals, dropped = propose_instructions(
            ctx.meta_model, ctx.rng, seed_instruction=ctx.seed_prompt.instruction,
            summary=summary.summary if summary else "", demo_sets=sets, n=n, forbidden=quoted_texts(train),
            temperature=self.proposal_temperature, max_tokens=self.meta_max_tokens,
            demos_in_context=DEMOS_IN_CONTEXT, tip_aware=True, fewshot_aware=True)
        ctx.record_event({"event": "instructions", "summary": summary.summary if summary else "",
                          "dropped": dropped, "instructions": [p.instruction for p in proposals]})
        return proposals

    @staticmethod
    def _race(state: OptimizationState) -> _Race:
        race = state.extra.get("auto")
        assert isinstance(race, _Race), "start() was not called"
        return race

    # -- one rung ----------------------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        return []

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        race = self._race(state)
        size = race.sizes[min(race.rung, len(race.sizes) - 1)]
        read = {arm: self._read(ctx, race, arm, size) for arm in race.active}
        results = {arm: result for arm, (result, _) in read.items()}
        ranked = sorted(race.active, key=lambda a: (-results[a].score, a))
        kept, rung, last = ranked, race.rung, False
        while not last:  # rungs planned on the same slice (the floor) are cut at once: their evidence is the same
            last = rung >= len(race.sizes) - 1 or len(kept) <= self.finalists
            if not last:
                kept, rung = kept[:keep_count(len(kept), self.eta, self.finalists)], rung + 1
                if race.sizes[rung] > size:
                    break
        self._file(ctx, state, race, ranked, read)
        ctx.record_event({"event": "rung", "rung": race.rung, "size": size, "arms": [
            {"arm": a, "base": race.arms[a][0], "calibration": race.arms[a][1], "score": results[a].score,
             "kept": a in kept} for a in ranked]})
        log.info("auto rung %d: %d arms on %d dev examples, best %.3f, %d kept", race.rung, len(ranked), size,
                 results[ranked[0]].score, len(kept))
        race.active = kept
        race.rung = rung
        state.frontier = list(dict.fromkeys(self._candidate(ctx, state, race, a).id for a in kept))
        state.done = last

    def _read(self, ctx: OptimizationContext, race: _Race, arm: int, size: int,
              ) -> tuple[EvalResult, Calibration | None]:
        """Arm `arm`'s result on the first `size` dev examples, scoring only what its base has not seen yet, and
        the prior it was read under."""
        base = race.bases[race.arms[arm][0]]
        if len(base.rows) < size:
            base.rows += ctx.evaluator.evaluate(base.prompt, race.order[len(base.rows):size]).examples
        rows = tuple(base.rows[:size])
        prior = self._prior(ctx, base, race.arms[arm][1], rows)
        return ctx.evaluator.rescore(EvalResult(0.0, rows), prior), prior

    def _prior(self, ctx: OptimizationContext, base: _Base, method: str,
               rows: tuple[ExampleResult, ...]) -> Calibration | None:
        """The label prior of `base` under `method`: contextual estimated once (3 calls), batch from the label
        log-probabilities of the dev inputs scored (no call); the run's own calibration where the run names one."""
        if method == "none":
            return None
        if method == "batch" and ctx.run_calibration == "none":
            return Calibration.estimate("batch", tuple(ctx.task.labels or ()),
                                        [r.label_logprobs or () for r in rows])
        if method not in base.priors:
            base.priors[method] = ctx.evaluator.calibrate(base.prompt, method).calibration  # type: ignore[assignment]
        return base.priors[method]

    def _file(self, ctx: OptimizationContext, state: OptimizationState, race: _Race, ranked: list[int],
              read: dict[int, tuple[EvalResult, Calibration | None]]) -> None:
        """Each base's best arm of this rung becomes its candidate's prompt and race score (the seed's arms each
        their own candidate)."""
        filed: set[int] = set()
        for arm in ranked:  # best first: the first arm of a candidate is its best
            base = race.bases[race.arms[arm][0]]
            result, prior = read[arm]
            cand = self._candidate(ctx, state, race, arm, prior)
            if cand.id in filed:
                continue
            filed.add(cand.id)
            if cand.id != 0:
                cand.prompt = replace(base.prompt, calibration=prior)
            race.reached[cand.id] = race.rung
            ctx.file_result(cand, RACE_KEY, result)

    def _candidate(self, ctx: OptimizationContext, state: OptimizationState, race: _Race, arm: int,
                   prior: Calibration | None = None) -> Candidate:
        """The candidate that holds arm `arm`: its base's one, or for the seed base, one per calibration."""
        base_index, method = race.arms[arm]
        base = race.bases[base_index]
        is_seed = base.prompt.key() == state.pool[0].prompt.key()
        slot = method if is_seed else "any"
        if slot not in base.candidates:
            if is_seed and method == ctx.run_calibration:
                base.candidates[slot] = 0
            else:
                cand = ctx.new_candidate(state, base.prompt, parent=0 if is_seed else None, origin="auto",
                                         data=dict(base.data, calibration=method), calibration=prior)
                assert cand is not None, "a base's prompt is registered once per calibration"
                base.candidates[slot] = cand.id
        return state.pool[base.candidates[slot]]

    def top(self, state: OptimizationState, k: int) -> list[Candidate]:
        """Candidates by the last rung they reached (the finalists first), then by their score there."""
        race = state.extra.get("auto")
        reached = race.reached if isinstance(race, _Race) else {}
        scored = [c for c in state.pool.values() if RACE_KEY in c.scores]
        return sorted(scored, key=lambda c: (-reached.get(c.id, -1), -c.scores[RACE_KEY], c.id))[:k]
