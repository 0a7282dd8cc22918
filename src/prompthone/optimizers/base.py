"""The optimizer contract: the data a method works on, the context it may use, and the base class it implements.

A method is a dataclass of knobs (its published defaults) with four hooks the shared run loop (`run.loop`) calls:
`start` once, then `step` until `state.done` or the budget is spent, and `top` to name its best candidates. Unlike
Optuna's samplers, which only propose, a method evaluates inside its own hooks (bandits, minibatches and Pareto
sets decide how much evidence a candidate gets), always through the `OptimizationContext`: `score` and
`record_score` file every score under a named key (`ScoreKey`), `new_candidate` registers prompts, `ask_meta` asks
the meta model with the shared reply parser and quote filter, and `record_event` keeps the method's decisions.
The run owns the budget (read-only here), the cache, the store, callbacks and progress, and finalizes every method
the same way: a score a method already has on the whole dev split is reused, never paid for twice.
`pack_extra`/`unpack_extra` take out of a resume point what must not travel (a loaded model).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from prompthone.errors import ConfigError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.evaluator import EvalResult, Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import WhiteBox
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.meta_calls import MetaReply, ask_meta, quoted_texts
from prompthone.prompts.calibration import Calibration, check_calibration
from prompthone.prompts.meta import INSTRUCTION_CHARS, QUOTE_RUN
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example, Task, example_key


class ScoreKey:
    """The names scores are filed under in `Candidate.scores` (and in the store): one constant per meaning.

    `DEV` and `TEST` are the finalization's (whole splits); the others are the methods' own evidence.
    """

    DEV = "dev"
    TEST = "test"
    DEV_SAMPLE = "dev_sample"  #: a fixed sample of dev (APE, GREATER)
    DEV_FULL = "dev_full"  #: MIPRO's full evaluations (the whole dev split)
    BANDIT = "bandit"  #: APO's bandit mean over sampled training examples
    TRAIN = "train"  #: OPRO's fixed training sample
    MINIBATCH = "minibatch"  #: MIPRO's running mean of minibatch scores
    PARETO = "pareto"  #: GEPA's aggregate on its Pareto set


@dataclass
class Candidate:
    """A prompt the search has produced, with where it came from and how it scored (per split/sample).

    `full_dev` names the score key, if any, whose latest score covers exactly the whole dev split: the
    finalization reuses it as the candidate's `ScoreKey.DEV` score instead of paying for a second pass.
    """

    id: int
    prompt: Prompt
    parent: int | None
    origin: str
    step: int
    scores: dict[str, float] = field(default_factory=dict)
    n_scored: dict[str, int] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    full_dev: str | None = None

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

    def find(self, prompt: Prompt, calibration: str | None = None) -> Candidate | None:
        """The candidate holding `prompt` (by content) under the calibration method `calibration` (default: the
        prompt's own, "none" without one), if the search has made it. A text and its calibrated form are two
        candidates only when a method races calibrations itself (`auto`); their priors are not compared."""
        key, method = prompt.key(), calibration or calibration_method(prompt)
        return next((c for c in self.pool.values() if c.prompt.key() == key and calibration_method(c.prompt) == method),
                    None)


def calibration_method(prompt: Prompt) -> str:
    """The calibration method a prompt carries ("none" when it has no prior)."""
    return prompt.calibration.method if prompt.calibration is not None else "none"


class OptimizationContext:
    """What a method may use: the task, the evaluator on the metered task model, the meta model, a seeded rng.

    `new_candidate` and `score` go through here so that every candidate and every score lands in the run's
    records the moment it exists. The metering wrapper stays the run's: a method reads the budget (`budget`) and
    the white-box backend (`white_box`) from here, and asks the meta model with `ask_meta`.
    """

    def __init__(self, task: Task, evaluator: Evaluator, meta_model: MeteredModel, rng: random.Random,
                 seed_prompt: Prompt, on_candidate: Callable[[Candidate], None],
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_evaluation: Callable[[Candidate, str, EvalResult], None] | None = None,
                 calibration: str = "none") -> None:
        self.task = task
        self.calibration = check_calibration(calibration)
        self.evaluator = evaluator
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

    @property
    def budget(self) -> Budget:
        """The run's search budget (read-only: the run spends it)."""
        return self.evaluator.model.meter.budget

    @property
    def run_calibration(self) -> str:
        """The calibration method every candidate of this run gets ("none" when the task is scored by generation,
        where there is no label prior to divide out)."""
        return self.calibration if self.evaluator.mode == "labels" else "none"

    @property
    def white_box(self) -> WhiteBox | None:
        """The task model's backend when it is white-box (tokenizer, embeddings, gradients), else None."""
        backend = self.evaluator.model.model
        return backend if backend.capabilities.white_box and isinstance(backend, WhiteBox) else None

    def with_evaluator(self, evaluator: Evaluator) -> OptimizationContext:
        """The same context scoring through `evaluator` (the finalization's, metered apart from the search)."""
        other = OptimizationContext(self.task, evaluator, self.meta_model, self.rng, self.seed_prompt,
                                    self._on_candidate, self._on_event, self._on_evaluation, self.calibration)
        other._next_id = self._next_id
        return other

    def record_candidate(self, cand: Candidate) -> None:
        """Record `cand` as it is now (a restored candidate after a resume; `new_candidate` records new ones)."""
        self._on_candidate(cand)

    def record_event(self, event: dict[str, Any]) -> None:
        """Keep a method-specific record (a step's decision and its reasons) in the run's events."""
        if self._on_event is not None:
            self._on_event(event)

    def new_candidate(self, state: OptimizationState, prompt: Prompt, *, parent: int | None, origin: str,
                      data: dict[str, Any] | None = None, calibration: Calibration | None = None,
                      ) -> Candidate | None:
        """Register a new prompt unless an identical one exists (returns None then).

        Under a run's calibration its label prior is estimated here, once per candidate (a prior inherited from
        the parent it was edited from belongs to another text and is dropped); the calls count like any other.
        A method that chooses calibrations itself passes the prior it chose as `calibration`: the prompt is
        registered with it as it is.
        """
        method = calibration.method if calibration is not None else self.run_calibration
        if state.find(prompt, method) is not None:
            return None
        prompt = (replace(prompt, calibration=calibration) if calibration is not None
                  else self.evaluator.calibrate(replace(prompt, calibration=None), self.calibration))
        cand = Candidate(self._next_id, prompt, parent, origin, state.step, data=dict(data or {}))
        self._next_id += 1
        state.pool[cand.id] = cand
        self._on_candidate(cand)
        return cand

    def score(self, cand: Candidate, examples: Sequence[Example], key: str) -> EvalResult:
        """Evaluate `cand` on `examples`, store the aggregate under `key`, and record it."""
        result = self.evaluator.evaluate(cand.prompt, examples)
        self.file_result(cand, key, result)
        return result

    def file_result(self, cand: Candidate, key: str, result: EvalResult) -> None:
        """File `result`, however the method obtained it (scored in parts, read under a calibration), as `cand`'s
        score under `key` with its per-example records; a result on the whole dev split, in any order, is marked
        for the finalization to reuse (`Candidate.full_dev`)."""
        self.record_score(cand, key, result.score, result.n)
        if key != ScoreKey.DEV and self.task.dev and _covers(result, self.task.dev):
            cand.full_dev = key
        self.record_evaluation(cand, key, result)

    def calls_left(self, role: str = "task") -> int | None:
        """Calls the search may still make for `role` (None: unlimited), for a method that sizes itself to them."""
        return self.evaluator.model.meter.remaining(role)

    def record_evaluation(self, cand: Candidate, key: str, result: EvalResult) -> None:
        """Keep the per-example outcomes behind `cand.scores[key]` (the report's wins and losses read them)."""
        if self._on_evaluation is not None:
            self._on_evaluation(cand, key, result)

    def record_score(self, cand: Candidate, key: str, score: float, n: int) -> None:
        """Store a score a method computed itself (bandit means, likelihoods) and record it."""
        cand.scores[key] = score
        cand.n_scored[key] = n
        if cand.full_dev == key:
            cand.full_dev = None
        self._on_candidate(cand)

    def ask_meta(self, texts: Sequence[str], *, max_tokens: int, temperature: float, top_p: float = 1.0,
                 forbidden: Sequence[str] | None = None, instruction: bool = True, whole_reply: bool = False,
                 prepare: Callable[[str], str] | None = None, retry_once: bool = False,
                 seeds: Sequence[int] | None = None, stop: Sequence[str] = (),
                 max_chars: int | None = INSTRUCTION_CHARS, quote_run: int = QUOTE_RUN) -> list[MetaReply]:
        """`meta_calls.ask_meta` on this run's meta model and rng; `forbidden` defaults to the training examples'
        texts (`quoted_texts(task.train)`)."""
        return ask_meta(self.meta_model, self.rng, texts, max_tokens=max_tokens, temperature=temperature,
                        top_p=top_p, forbidden=quoted_texts(self.task.train) if forbidden is None else forbidden,
                        instruction=instruction, whole_reply=whole_reply, prepare=prepare, retry_once=retry_once,
                        seeds=seeds, stop=stop, max_chars=max_chars, quote_run=quote_run)


class Optimizer(ABC):
    """Base class of every method. Subclasses are dataclasses whose fields are the method's knobs."""

    name: ClassVar[str]
    #: the score key the method ranks candidates by (the driver re-ranks its top ones on the full dev set)
    rank_key: ClassVar[str] = ScoreKey.DEV_SAMPLE
    #: score keys the method only ever files whole-dev-split scores under (read when restoring old resume points;
    #: new ones carry `Candidate.full_dev` themselves)
    full_dev_keys: ClassVar[tuple[str, ...]] = ()
    #: where the method differs on purpose from its paper and reference code, one short sentence each (shown by
    #: `prompthone methods`; the module docstring says why)
    departures: ClassVar[tuple[str, ...]] = ()

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

    def step_cost(self, shape: TaskShape) -> StepCost | None:
        """What the setup and one step cost at these knobs on a task of this shape, before any call (the pre-run
        estimate, `run.estimate`); None: the method sizes itself to the budget or has no fixed step."""
        return None

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


def _covers(result: EvalResult, examples: Sequence[Example]) -> bool:
    """Whether `result` holds exactly `examples`, each once, in any order."""
    if len(result.examples) != len(examples):  # most scorings are of samples: no hashing for them
        return False
    keys = sorted(example_key(r.input, r.target) for r in result.examples)
    return keys == sorted(e.key for e in examples)


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
