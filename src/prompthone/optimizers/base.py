"""The optimizer contract: a small base class every method implements, driven by one shared loop.

Like Optuna's samplers, a method only decides *what to try next* (`propose`) and *what to keep*
(`select`); the driver (`optimizers.driver`) owns the budget, the cache, the run directory, callbacks and
progress. `step` = propose then select; a method overrides `step` only when its loop needs it.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from prompthone.errors import ConfigError
from prompthone.evaluation.evaluator import EvalResult, Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task


@dataclass
class Candidate:
    """A prompt the search has produced, with where it came from and how it scored (per split/sample)."""

    id: int
    prompt: Prompt
    parent: int | None
    origin: str
    step: int
    scores: dict[str, float] = field(default_factory=dict)
    n_scored: dict[str, int] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "origin": self.origin, "step": self.step,
                "prompt": self.prompt.to_dict(), "scores": self.scores, "n_scored": self.n_scored,
                "data": self.data}


@dataclass
class OptimizationState:
    """Everything a method carries between steps. `pool` is every candidate ever made, by id."""

    step: int = 0
    pool: dict[int, Candidate] = field(default_factory=dict)
    frontier: list[int] = field(default_factory=list)
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def ranked(self, key: str) -> list[Candidate]:
        """Candidates scored under `key`, best first (ties: the older candidate first)."""
        scored = [c for c in self.pool.values() if key in c.scores]
        return sorted(scored, key=lambda c: (-c.scores[key], c.id))


class OptimizationContext:
    """What a method may use: the task, the metered task and meta models, the evaluator, a seeded rng.

    `new_candidate` and `score` go through here so that every candidate and every score lands in the
    run directory the moment it exists.
    """

    def __init__(self, task: Task, evaluator: Evaluator, meta_model: MeteredModel, rng: random.Random,
                 seed_prompt: Prompt, on_candidate: Callable[[Candidate], None],
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_evaluation: Callable[[Candidate, str, EvalResult], None] | None = None) -> None:
        self.task = task
        self.evaluator = evaluator
        self.task_model = evaluator.model
        self.meta_model = meta_model
        self.rng = rng
        self.seed_prompt = seed_prompt
        self._on_candidate = on_candidate
        self._on_event = on_event
        self._on_evaluation = on_evaluation
        self._next_id = 0

    @property
    def next_id(self) -> int:
        """The id the next new candidate gets (saved and restored with a checkpoint)."""
        return self._next_id

    @next_id.setter
    def next_id(self, value: int) -> None:
        self._next_id = value

    def record_event(self, event: dict[str, Any]) -> None:
        """Keep a method-specific record (a step's decision and its reasons) in the run directory's events.jsonl."""
        if self._on_event is not None:
            self._on_event(event)

    def new_candidate(self, state: OptimizationState, prompt: Prompt, *, parent: int | None, origin: str,
                      data: dict[str, Any] | None = None) -> Candidate | None:
        """Register a new prompt unless an identical one exists (returns None then)."""
        key = prompt.key()
        if any(c.prompt.key() == key for c in state.pool.values()):
            return None
        cand = Candidate(self._next_id, prompt, parent, origin, state.step, data=dict(data or {}))
        self._next_id += 1
        state.pool[cand.id] = cand
        self._on_candidate(cand)
        return cand

    def score(self, cand: Candidate, examples: Sequence[Example], key: str) -> EvalResult:
        """Evaluate `cand` on `examples`, store the aggregate under `key`, and record it."""
        result = self.evaluator.evaluate(cand.prompt, examples)
        self.record_score(cand, key, result.score, result.n)
        self.record_evaluation(cand, key, result)
        return result

    def record_evaluation(self, cand: Candidate, key: str, result: EvalResult) -> None:
        """Keep the per-example outcomes behind `cand.scores[key]` (the report's wins and losses read them)."""
        if self._on_evaluation is not None:
            self._on_evaluation(cand, key, result)

    def record_score(self, cand: Candidate, key: str, score: float, n: int) -> None:
        """Store a score a method computed itself (bandit means, likelihoods) and record it."""
        cand.scores[key] = score
        cand.n_scored[key] = n
        self._on_candidate(cand)


class Optimizer(ABC):
    """Base class of every method. Subclasses are dataclasses whose fields are the method's knobs."""

    name: ClassVar[str]
    #: the score key the method ranks candidates by (the driver re-ranks its top ones on the full dev set)
    rank_key: ClassVar[str] = "dev_sample"

    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:  # noqa: B027 - optional hook
        """Prepare before the first step (the seed candidate is already in `state.pool[0]`)."""

    def step(self, ctx: OptimizationContext, state: OptimizationState) -> OptimizationState:
        """One iteration: propose new candidates, then select what to keep."""
        proposals = self.propose(ctx, state)
        self.select(ctx, state, proposals)
        state.step += 1
        return state

    @abstractmethod
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        """Make new candidates (already registered with `ctx.new_candidate`)."""

    @abstractmethod
    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        """Score what needs scoring and update `state.frontier`; set `state.done` when finished."""

    def pack_extra(self, extra: dict[str, Any]) -> dict[str, Any]:
        """`state.extra` as it goes into a checkpoint (pickled): take out what must not travel, such as a model."""
        return extra

    def unpack_extra(self, extra: dict[str, Any], ctx: OptimizationContext) -> dict[str, Any]:
        """Undo `pack_extra` on resume, putting back what it took out (from `ctx`)."""
        return extra

    def top(self, state: OptimizationState, k: int) -> list[Candidate]:
        """The method's current best `k` candidates, best first."""
        return state.ranked(self.rank_key)[:k]

    def require_positive(self, *knobs: str) -> None:
        """Raise ConfigError naming the first of `knobs` that is below 1 (counts, sizes, rounds)."""
        for knob in knobs:
            if getattr(self, knob) < 1:
                raise ConfigError(f"{knob} must be ≥ 1, got {getattr(self, knob)}")

    @classmethod
    def knobs(cls) -> dict[str, Any]:
        """The method's knobs and their (published) defaults."""
        return {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Optimizer:
        """Build from user options, converting strings (from the CLI) to each knob's type."""
        known = cls.knobs()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for method {cls.name!r}; "
                              f"valid options: {', '.join(sorted(known))}")
        converted = {k: _convert(k, v, known[k]) for k, v in options.items()}
        return cls(**converted)


def _convert(name: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return type(default)(value)
    except ValueError as exc:
        raise ConfigError(f"option {name}={value!r}: expected a {type(default).__name__}") from exc
