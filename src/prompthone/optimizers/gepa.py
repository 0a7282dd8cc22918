"""GEPA — reflective prompt evolution with Pareto selection (Agrawal et al., 2025, "GEPA: Reflective Prompt
Evolution Can Outperform Reinforcement Learning"), over a prompt's text components: the instruction and the
system message (GEPA's named components; `evolve_system=False` evolves the instruction alone), and with
`evolve_answer_prefix=True` the text the model's reply starts with (`Prompt.answer_prefix`: the system message and
answer prefix are what DSPy optimized in Battle & Gollapudi 2024, the `study --grid battle-gollapudi` preset).

Algorithm 1 of the paper, one iteration per driver step:
1. Every candidate in the pool has a score on each example of a fixed Pareto set (`pareto_set_size` dev
   examples drawn with the run's seed, 0 = the whole dev split; the training split when a task has no dev).
   The seed prompt is scored first.
2. A parent is sampled from the instance-wise Pareto front (§3.2, `selection.pareto`): per example the
   candidates with the best score, dominated candidates removed, probability ∝ examples (co-)won.
3. The parent runs on the next `minibatch_size` training examples (epoch-shuffled order, cycling through the
   training split); each example's input, the model's output, the answer read from it and the feedback of the
   task's feedback function (μ_f: `Task.feedback`, else `evaluation.feedback.default_feedback`, which says what
   was expected, what was produced and why it scored as it did) become the reflection's records.
4. Component selection: `component_selector='round_robin'` (GEPA's default) takes the parent's next component
   in turn (instruction, then system message, …; a child continues from its parent's position), 'all' rewrites
   every component in one iteration.
5. Reflection (§3.1): per selected component one meta-model call shows its current text and the feedback
   records and asks for an improved one (GEPA's reflection prompt, `meta_prompts/gepa_reflect.txt`), parsed from
   <START>…<END> with the shared helpers (code fences and markdown heading lines dropped; one retry when nothing
   usable comes back). Reflections may run to `meta_max_tokens` (4096; the reference sets no cap) and are kept
   whole, facts from the examples included; a reply that repeats 12 words of a shown example in a row has copied
   it and is dropped. A parent that is perfect on its minibatch is not reflected on (`skip_perfect_score`).
6. The child runs on the same minibatch and is accepted only if its summed score is strictly higher than the
   parent's; accepted children are scored on the whole Pareto set and join the pool.
7. With `use_merge` (GEPA+Merge, §3.3), after an iteration that found a new candidate and while fewer than
   `max_merge_invocations` merges were accepted, the next iteration tries a merge instead: two non-dominated
   candidates of different lineages with a common ancestor that scores no better than either; per component
   the version that changed from the ancestor is taken (both changed: the higher aggregate). The merge is
   checked on 5 Pareto examples balanced over where each parent wins, accepted if not worse than the better
   parent there, then scored on the whole Pareto set.

Candidates are ranked by their aggregate score on the Pareto set (`rank_key='pareto'`); when the Pareto set is
the whole dev split that score is also stored as 'dev', so finalization does not pay for it twice.

Budget: `max_metric_calls` counts every per-example evaluation (Pareto-set, minibatch and merge-check scores),
as GEPA does; an iteration starts only when its worst case fits, so the count never exceeds the cap (GEPA
checks it between iterations and may overshoot by one). The driver's call budget applies as well. With
`max_metric_calls=0` the call budget is the only stop, so a run needs one of the two.

The task's output format, the demos and the answering mode stay as the seed has them. An empty system message
is a component with empty text (the reflection is told there is none) and renders as no system message. With
two components a merge can combine a lineage that rewrote the instruction with one that rewrote the system
message; with `evolve_system=False` GEPA's merge precondition (a component unchanged in one descendant and
changed in the other) never holds, so merges are attempted and recorded as `no_pair`. All search state is JSON
in `OptimizationState.extra` and `Candidate.data` (per-example Pareto scores, parents, the next component), so a
stopped GEPA run resumes from its last step's resume point like every method (`prompthone optimize --resume`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from prompthone.errors import ConfigError
from prompthone.evaluation.evaluator import EvalResult, ExampleResult
from prompthone.evaluation.feedback import feedback_for
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.gepa_parts import (
    find_merge_triplet,
    merge_components,
    merge_subsample,
    new_sampler_state,
    next_minibatch,
)
from prompthone.optimizers.meta_calls import quoted_texts
from prompthone.prompts.meta import COPIED_RUN, fill, load_meta_prompt, neutralize_tags
from prompthone.prompts.prompt import Prompt
from prompthone.selection.pareto import nondominated, select_from_pareto_front
from prompthone.tasks.example import Example, Task

PARETO = ScoreKey.PARETO
SELECTORS = ("round_robin", "all")
#: how the reflection prompt names each component, and what it shows for an empty one
_COMPONENT_WORDS = {"instruction": ("instruction", "(no instruction)"),
                    "system": ("system message", "(no system message)"),
                    "answer_prefix": ("answer prefix (the text the assistant's reply starts with)",
                                      "(no answer prefix)")}
#: examples a merged candidate is checked on before its full evaluation (fixed in GEPA's reference code)
MERGE_CHECK_SIZE = 5
#: lines of a reply that are layout, not instruction text: code fences (GEPA's own reply format) and markdown
#: headings (the feedback records are markdown, and small models echo their headings)
_LAYOUT = re.compile(r"^[ \t]*(?:```[^\n]*|#{1,6}(?:[ \t][^\n]*)?)$", re.MULTILINE)


@dataclass
class GEPA(Optimizer):
    """Reflective mutation of the prompt's components on minibatch feedback, parents from a per-example Pareto front."""

    name: ClassVar[str] = "gepa"
    rank_key: ClassVar[str] = PARETO
    departures: ClassVar[tuple[str, ...]] = (
        "a reflection that repeats 12 words of a shown example in a row is dropped, and the reflection prompt says "
        "the examples are data (a defence against injected instructions)",
        "meta_max_tokens caps a reflection at 4096 tokens (the reference leaves it to the reflection model)",
    )

    max_metric_calls: int = 0
    pareto_set_size: int = 0
    minibatch_size: int = 3
    skip_perfect_score: bool = True
    perfect_score: float = 1.0
    use_merge: bool = False
    max_merge_invocations: int = 5
    evolve_system: bool = True
    evolve_answer_prefix: bool = False
    component_selector: str = "round_robin"
    meta_temperature: float = 1.0
    meta_max_tokens: int = 4096

    def __post_init__(self) -> None:
        self.require_positive("minibatch_size", "meta_max_tokens")
        if self.component_selector not in SELECTORS:
            raise ConfigError(f"component_selector must be one of {SELECTORS}, got {self.component_selector!r}")
        for knob in ("max_metric_calls", "pareto_set_size", "max_merge_invocations"):
            if getattr(self, knob) < 0:
                raise ConfigError(f"{knob} must be ≥ 0 (0: {'no limit' if knob == 'max_metric_calls' else 'all'}),"
                                  f" got {getattr(self, knob)}")

    def step_cost(self, shape: TaskShape) -> StepCost:
        """The seed on the Pareto set first; an iteration runs the parent and its child on one minibatch, with one
        reflection per component rewritten, and an accepted child on the whole Pareto set (counted here: the upper
        cost). It goes on until the budget or `max_metric_calls` ends it."""
        pool = shape.dev or shape.train
        pareto = pool if self.pareto_set_size == 0 else min(self.pareto_set_size, pool)
        minibatch = min(self.minibatch_size, shape.train)
        components = 1 + self.evolve_system + self.evolve_answer_prefix
        meta = components if self.component_selector == "all" else 1
        iteration = 2 * shape.evaluations(1, minibatch) + shape.evaluations(1, pareto)
        return StepCost("iteration", shape.evaluations(1, pareto) + iteration, meta, iteration, meta, None,
                        ("pareto_set_size", "minibatch_size"))

    # -- setup -----------------------------------------------------------------------------------
    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        task = ctx.task
        if not task.train:
            raise ConfigError(f"GEPA needs training examples for its minibatches; task {task.name!r} has none")
        split = "dev" if task.dev else "train"
        pool = task.split(split)
        size = len(pool) if self.pareto_set_size == 0 else min(self.pareto_set_size, len(pool))
        budget = ctx.budget
        if self.max_metric_calls == 0 and budget.calls is None and budget.tokens is None and budget.task_calls is None:
            raise ConfigError("GEPA needs a stop condition: set the option max_metric_calls or a call/token budget")
        if 0 < self.max_metric_calls < size:
            raise ConfigError(f"max_metric_calls={self.max_metric_calls} cannot pay for scoring the seed on the "
                              f"{size}-example Pareto set; raise it or lower pareto_set_size")
        state.extra.update({
            "pareto_split": split, "pareto_ids": sorted(ctx.rng.sample(range(len(pool)), size)),
            "metric_calls": 0, "sampler": new_sampler_state(len(task.train)),
            "merge": {"due": 0, "accepted": 0, "last_found_new": False, "tried": []},
        })
        seed = state.pool[0]
        seed.data.update(parents=[], next_component=0)
        self._score_on_pareto_set(ctx, state, seed)
        self._update(ctx, state)

    # -- one iteration ---------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        merge = state.extra["merge"]
        if self.use_merge and merge["due"] > 0 and merge["last_found_new"]:
            merge["last_found_new"] = False
            attempted, made = self._merge(ctx, state)
            if attempted:  # GEPA skips reflection in an iteration that tried a merge
                return made
        merge["last_found_new"] = False
        return self._reflect(ctx, state)

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        merge = state.extra["merge"]
        for cand in proposals:
            self._score_on_pareto_set(ctx, state, cand)
            if cand.origin == "merge":
                merge["due"] -= 1
                merge["accepted"] += 1
            elif self.use_merge:
                merge["last_found_new"] = True
                if merge["accepted"] < self.max_merge_invocations:
                    merge["due"] += 1
        self._update(ctx, state)

    def _reflect(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        """Reflective mutation: parent from the Pareto front, minibatch feedback, one rewrite, strict acceptance."""
        event: dict[str, Any] = {"event": "reflection", "iteration": state.step, "outcome": "stopped"}
        made: list[Candidate] = []
        try:
            scores, aggregate = self._pareto_table(state)
            parent = state.pool[select_from_pareto_front(scores, aggregate, ctx.rng)]
            ids = next_minibatch(state.extra["sampler"], self.minibatch_size, ctx.rng)
            minibatch = [ctx.task.train[i] for i in ids]
            event.update(parent=parent.id, minibatch=ids)
            before = self._evaluate(ctx, state, parent.prompt, minibatch)
            event.update(parent_scores=before.per_example(), parent_sum=sum(before.per_example()))
            if self.skip_perfect_score and all(s >= self.perfect_score for s in before.per_example()):
                event["outcome"] = "perfect"
                return made
            names = self._select_components(parent)
            ctx.record_candidate(parent)  # its round-robin turn moved: the store holds a candidate's latest state
            current = self.components(parent.prompt)
            texts = {name: self._reflection(ctx, name, current[name], parent.prompt, before) for name in names}
            event.update(components=names, proposed=texts)
            written = {name: text for name, text in texts.items() if text is not None}
            if len(written) < len(names):
                event["outcome"] = "no_text"
                return made
            prompt = _with_components(parent.prompt, {**current, **written})
            if state.find(prompt) is not None:
                event["outcome"] = "duplicate"
                return made
            after = self._evaluate(ctx, state, prompt, minibatch)
            event.update(child_scores=after.per_example(), child_sum=sum(after.per_example()))
            if sum(after.per_example()) <= sum(before.per_example()):
                event["outcome"] = "rejected"
                return made
            child = ctx.new_candidate(state, prompt, parent=parent.id, origin="reflection",
                                      data={"parents": [parent.id], "minibatch": ids, "components": names,
                                            "next_component": parent.data.get("next_component", 0),
                                            "minibatch_scores": {"parent": before.per_example(),
                                                                 "child": after.per_example()}})
            if child is not None:
                made.append(child)
                event.update(outcome="accepted", child=child.id)
            return made
        finally:
            event.update(accepted=bool(made), metric_calls=state.extra["metric_calls"])
            ctx.record_event(event)

    def components(self, prompt: Prompt) -> dict[str, str]:
        """The prompt's evolvable text components (GEPA's named components), in round-robin order."""
        found = {"instruction": prompt.instruction}
        if self.evolve_system:
            found["system"] = prompt.system or ""
        if self.evolve_answer_prefix:
            found["answer_prefix"] = prompt.answer_prefix
        return found

    def _select_components(self, parent: Candidate) -> list[str]:
        """GEPA's component selectors: the parent's next component in turn (advancing it), or all of them."""
        names = list(self.components(parent.prompt))
        if self.component_selector == "all":
            return names
        position = int(parent.data.get("next_component", 0)) % len(names)
        parent.data["next_component"] = (position + 1) % len(names)
        return [names[position]]

    def _reflection(self, ctx: OptimizationContext, name: str, current: str, prompt: Prompt,
                    result: EvalResult) -> str | None:
        """Ask the meta model for a better text of component `name` given the minibatch feedback (one retry)."""
        show_output = ctx.evaluator.mode == "generate" or prompt.reasons
        word, empty = _COMPONENT_WORDS[name]
        text = fill(load_meta_prompt("gepa_reflect"), component=word, text=current.strip() or empty,
                    feedback=format_feedback(result.examples, ctx.task, show_output=show_output))
        replies = ctx.ask_meta([text], max_tokens=self.meta_max_tokens, temperature=self.meta_temperature,
                               forbidden=quoted_texts(result.examples), prepare=lambda reply: _LAYOUT.sub("", reply),
                               retry_once=True, max_chars=None, quote_run=COPIED_RUN)
        return next((reply.items[0] for reply in replies if reply.items), None)

    def _merge(self, ctx: OptimizationContext, state: OptimizationState) -> tuple[bool, list[Candidate]]:
        """GEPA+Merge: returns (whether a merged candidate was checked, the accepted ones)."""
        event: dict[str, Any] = {"event": "merge", "iteration": state.step, "outcome": "no_pair"}
        made: list[Candidate] = []
        checked = False
        try:
            scores, aggregate = self._pareto_table(state)
            components = {cid: self.components(state.pool[cid].prompt) for cid in scores}
            parents = {cid: list(state.pool[cid].data.get("parents", [])) for cid in scores}
            tried = {(int(i), int(j), int(a)) for i, j, a in state.extra["merge"]["tried"]}
            if len(scores) < 3:
                return checked, made
            triplet = find_merge_triplet(ctx.rng, nondominated(scores, aggregate), parents, aggregate, components,
                                         tried)
            if triplet is None:
                return checked, made
            i, j, ancestor = triplet
            state.extra["merge"]["tried"].append([i, j, ancestor])
            merged, sources = merge_components(components[ancestor], components[i], components[j], aggregate[i],
                                               aggregate[j], ctx.rng)
            prompt = _with_components(state.pool[ancestor].prompt, merged)
            event.update(pair=[i, j], ancestor=ancestor, sources=sources)
            if state.find(prompt) is not None:
                event["outcome"] = "duplicate"
                return checked, made
            positions = merge_subsample(scores[i], scores[j], MERGE_CHECK_SIZE, ctx.rng)
            parent_sums = [sum(scores[c][k] for k in positions) for c in (i, j)]
            checked = True
            examples = self._pareto_examples(ctx, state)
            result = self._evaluate(ctx, state, prompt, [examples[k] for k in positions])
            event.update(positions=positions, parent_sums=parent_sums, merged_scores=result.per_example(),
                         merged_sum=sum(result.per_example()), outcome="rejected")
            if sum(result.per_example()) >= max(parent_sums):
                turn = max(int(state.pool[c].data.get("next_component", 0)) for c in (i, j))
                child = ctx.new_candidate(state, prompt, parent=i, origin="merge",
                                          data={"parents": [i, j], "ancestor": ancestor, "next_component": turn})
                if child is not None:
                    made.append(child)
                    event.update(outcome="accepted", child=child.id)
            return checked, made
        finally:
            event.update(accepted=bool(made), metric_calls=state.extra["metric_calls"])
            ctx.record_event(event)

    # -- scoring and bookkeeping -----------------------------------------------------------------
    def _evaluate(self, ctx: OptimizationContext, state: OptimizationState, prompt: Prompt,
                  examples: Sequence[Example]) -> EvalResult:
        """Score `prompt` on `examples`, counting one metric call per example (before the calls are made)."""
        state.extra["metric_calls"] += len(examples)
        return ctx.evaluator.evaluate(prompt, examples)

    def _pareto_examples(self, ctx: OptimizationContext, state: OptimizationState) -> list[Example]:
        pool = ctx.task.split(state.extra["pareto_split"])
        return [pool[i] for i in state.extra["pareto_ids"]]

    def _score_on_pareto_set(self, ctx: OptimizationContext, state: OptimizationState, cand: Candidate) -> None:
        """Full evaluation: per-example scores into `cand.data`, the aggregate under 'pareto' (and 'dev')."""
        examples = self._pareto_examples(ctx, state)
        result = self._evaluate(ctx, state, cand.prompt, examples)
        cand.data["pareto_scores"] = result.per_example()
        if state.extra["pareto_split"] == "dev" and len(examples) == len(ctx.task.dev):
            ctx.record_score(cand, "dev", result.score, result.n)
        ctx.record_score(cand, PARETO, result.score, result.n)
        ctx.record_evaluation(cand, PARETO, result)
        ctx.record_event({"event": "pareto_eval", "iteration": state.step, "candidate": cand.id,
                          "origin": cand.origin, "score": result.score,
                          "metric_calls": state.extra["metric_calls"]})

    def _pareto_table(self, state: OptimizationState) -> tuple[dict[int, list[float]], dict[int, float]]:
        """Per-example and aggregate Pareto-set scores of every fully evaluated candidate."""
        scored = [c for c in state.pool.values() if PARETO in c.scores and "pareto_scores" in c.data]
        return ({c.id: list(c.data["pareto_scores"]) for c in scored}, {c.id: c.scores[PARETO] for c in scored})

    def _update(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        """The frontier is the non-dominated set, best first; stop when the next iteration cannot be paid for."""
        scores, aggregate = self._pareto_table(state)
        state.frontier = sorted(nondominated(scores, aggregate), key=lambda c: (-aggregate[c], c))
        state.done = not self._affordable(state)

    def _affordable(self, state: OptimizationState) -> bool:
        """Whether the next iteration's worst case fits in `max_metric_calls` (always, without a cap)."""
        if self.max_metric_calls == 0:
            return True
        full = len(state.extra["pareto_ids"])
        need = 2 * self.minibatch_size + full
        merge = state.extra["merge"]
        if self.use_merge and merge["due"] > 0 and merge["last_found_new"]:
            need = max(need, MERGE_CHECK_SIZE + full)
        return state.extra["metric_calls"] + need <= self.max_metric_calls


def format_feedback(results: Sequence[ExampleResult], task: Task, *, show_output: bool) -> str:
    """The reflection's records, GEPA-style: per example its input, the model's output and answer, and the
    feedback (μ_f) of the task's feedback function (`evaluation.feedback`: its own, else the default, which says
    what was expected, what was produced and why it scored as it did).

    Example text is defanged so it cannot fake the reply tags. `show_output` adds the model's raw output (its
    generation or reasoning, whole); label scoring has none beyond the chosen label.
    """
    feedback = feedback_for(task)
    blocks = []
    for n, r in enumerate(results, 1):
        answer = neutralize_tags(r.prediction) if r.prediction is not None else "(no answer could be read)"
        lines = [f"# Example {n}", "## Input", neutralize_tags(r.input)]
        if show_output:
            lines += ["## Assistant's output", neutralize_tags(r.raw.strip()) or "(empty)"]
        lines += ["## Assistant's answer", answer, "## Feedback", neutralize_tags(feedback(r, task))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _with_components(prompt: Prompt, components: dict[str, str]) -> Prompt:
    """`prompt` with the given component texts; an empty system message becomes no system message."""
    if "system" in components:
        prompt = replace(prompt, system=components["system"].strip() or None)
    if "answer_prefix" in components:
        prompt = replace(prompt, answer_prefix=components["answer_prefix"].strip())
    return replace(prompt, instruction=components["instruction"])
