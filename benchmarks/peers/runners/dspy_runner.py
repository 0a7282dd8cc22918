"""DSPy as a peer: MIPROv2, GEPA or COPRO on one job, under the peer contract (see benchmarks/peers/job.py).

Invoked as `<dspy venv>/bin/python benchmarks/peers/runners/dspy_runner.py <job.json>` (cwd and PYTHONPATH: the
repository root). `job.system` picks the optimizer: "dspy-mipro", "dspy-gepa" or "dspy-copro". Needs dspy (3.4.x)
and, for MIPROv2, optuna (`dspy[optuna]`).

The program is DSPy as shipped: `dspy.Predict` over a signature `input -> answer` whose instructions are the seed
instruction plus the task's output-format line, with DSPy's default ChatAdapter (and its JSONAdapter fallback on a
parse failure). The metric is the contract's `answer_matches` on the parsed `answer` field; a prediction DSPy
cannot parse scores 0 (Evaluate's failure_score), never aborts the run (max_errors is effectively unlimited).
The task model is one `dspy.LM` (the job's model behind the counting proxy, temperature 0). The proposer (MIPRO's
and COPRO's prompt model, GEPA's reflection model) is a second `dspy.LM` on the job's proposer account: the same
model as the task model unless the harness runs a separate proposer (`job.separate_proposer`, e.g. Qwen2.5-Coder
1.5B proposing for the 0.5B). The proposers keep the temperatures DSPy gives them (MIPRO 1.0, COPRO 1.4), and
GEPA's reflection LM is the proposer at temperature 1.0, as DSPy's GEPA documentation recommends.

Knobs, sized to `job.budget_calls` (task-model calls with a separate proposer, whose calls are then free of the
budget; else all LM calls, task and proposer together, as counted at the proxy). `r` below is
`job.options["calls_per_prediction"]`, the LM calls one prediction costs (default 2: ChatAdapter, then the
JSONAdapter fallback, as observed with SmolLM2-135M):
- MIPROv2: `auto=None` with the knobs of `_mipro_knobs` (4 candidates: 2 bootstrapped demo sets of at most 2
  demos, 4 labeled demos, 4 instructions; minibatches of a third of dev, a full evaluation every 5 trials as DSPy
  does; as many trials as fit). `auto="light"` (the published default: 10 full dev evaluations after
  bootstrapping 4 sets, far beyond budgets of a few hundred calls, see `_mipro_light_estimate`) is what
  `job.options["auto"] = "light"` runs. Seeded with job.seed, one thread. No permission prompt exists any more in
  DSPy 3.4 (`requires_permission_to_run` is deprecated), so it is not passed.
- GEPA: `max_metric_calls = budget` with a separate proposer, else `0.8 * budget` (the rest for reflection
  calls), plus a stopper on the real LM-call count: GEPA counts metric calls, not LM calls (a metric call costs r
  LM calls). The stopper
  ends GEPA before an iteration whose minibatch stage (parent and child on 3 train examples, plus one reflection
  when the proposer is not separate) no longer fits. It does not reserve room for the full dev evaluation of an
  accepted child: that evaluation may be cut off by the proxy, and the run then reports the best fully evaluated
  candidate, status "cut_off".
- COPRO: breadth and depth from the arithmetic in `_copro_knobs`. COPRO scores candidates on the set it is given
  as "trainset"; it is given the dev split, the set MIPROv2 and GEPA select on, so internal scores compare.

What DSPy cannot use here: prompthone scores label log-probabilities; DSPy only sees generated text (no logprob
scoring), and the tiny model mostly cannot produce DSPy's structured output format, so many predictions fail to
parse (counted in `extra["parse"]`). No custom adapter rescues them: that is the peer as shipped. The same holds
for the optimizers' own proposers, which are DSPy programs too: COPRO's first proposal and MIPROv2's instruction
proposal (GroundedProposer) raise AdapterParseError when the reply does not parse, and DSPy does not catch it
there (GEPA does catch failed reflections). The run then ends "failed", reporting the best program it had fully
evaluated on dev (before any proposal: the seed program).

Budget refusals: the first HTTP 403 `budget_exhausted` stops the optimizer at once (a BaseException, so DSPy's
own "score the failure as 0 and go on" handlers do not turn it into more refused calls); the runner then recovers
the best program from the dev evaluations it recorded. LM retries are off (num_retries=0), so a 403 is never
retried. Caching: DSPy's in-memory cache only, within the run (the disk cache is off; DSPY_CACHEDIR is the
harness's per-run directory, or one in out_dir). DSPy's logs, progress bars and prints go to
`<out_dir>/dspy.log`; stdout gets one short line per stage and per dev evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers.job import Job, Pair, PeerResult, answer_matches, is_budget_refusal, main_job

SYSTEMS = ("dspy-mipro", "dspy-gepa", "dspy-copro")
UNLIMITED_ERRORS = 10**9  # parse failures are scored 0 by Evaluate; they must never abort a run
DEFAULT_CALLS_PER_PREDICTION = 2.0  # SmolLM2-135M: ChatAdapter almost always fails to parse, JSONAdapter retries
GEPA_METRIC_SHARE = 0.8  # max_metric_calls = 0.8 * budget / r when reflections are paid from the same budget
MIPRO_CANDIDATES = 4  # demo sets (zero-shot, labeled-only, 2 bootstrapped) and instruction candidates
MIPRO_BOOTSTRAPPED, MIPRO_LABELED = 2, 4  # demos per set: bootstrapped at most, labeled at most
MIPRO_FULL_EVAL_STEPS = 5  # DSPy's default: a full dev evaluation of the best averaged candidate every 5 trials
MIPRO_SUCCESS_GUESS = 0.5  # share of train predictions assumed correct while bootstrapping (sizes the estimate)
GEPA_REFLECTION_WORST = 3  # LM calls one GEPA reflection may cost (a batched call, then a per-task retry, slack)
COPRO_MAX_BREADTH, COPRO_MAX_DEPTH = 10, 3  # COPRO's own defaults, the upper ends of the search
LOGGERS = ("dspy", "gepa", "optuna", "LiteLLM", "litellm", "httpx", "openai")

_stdout = sys.stdout  # progress lines go here even while DSPy's own output is redirected to the log file


class BudgetCut(BaseException):
    """The proxy refused a call: stop the optimizer now. A BaseException so DSPy's `except Exception` handlers
    (which would score the failure 0 and carry on, spending more refused calls) let it through."""


@dataclass
class Evaluation:
    """One complete dspy.Evaluate run the runner saw: the program as evaluated, its score (0..1), its set."""

    program: Any
    score: float
    keys: tuple[str, ...]  # the evaluated inputs, sorted (DSPy may reorder a set)


@dataclass
class Tracker:
    """What the runner counts itself: LM requests by role, refusals, parse outcomes, complete evaluations."""

    calls: dict[str, int] = field(default_factory=dict)  # requests that reached the proxy, by role
    cache_hits: int = 0  # requests DSPy's (in-run, in-memory) cache answered
    refused: int = 0
    refusal: str = ""
    parse: dict[str, dict[str, int]] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)
    stage: str = "setup"
    log: Any = None

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def budgeted(self, job: Job) -> int:
        """The calls paid from `job.budget_calls`: task calls with a separate proposer, else all of them."""
        return self.calls.get("task", 0) if job.separate_proposer else self.total_calls

    def say(self, message: str) -> None:
        line = f"[dspy-runner] {message}"
        print(line, file=_stdout, flush=True)
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()


TRACK = Tracker()


# -- knob arithmetic ----------------------------------------------------------------------------------------------
def _copro_knobs(budget: int, n_select: int, per_prediction: float,
                 proposer_counts: bool = True) -> tuple[int, int, int]:
    """(breadth, depth, estimated calls) for COPRO, the most candidate evaluations that fit the budget.

    COPRO with breadth b and depth d (one predictor, selection set of n examples, r LM calls per prediction):
    - one proposal request with n=b-1 completions (the seed instruction is the b-th candidate): r*(b-1) calls;
    - each depth evaluates b candidates on the n examples: d*b*n predictions, r*d*b*n calls;
    - between depths, one proposal request with n=b completions: r*(d-1)*b calls.
    Total r*(d*b*n + (b-1) + (d-1)*b), or r*d*b*n when the proposer's calls are not paid from the budget
    (`proposer_counts` False). E.g. budget 60, n=10, r=2: b=2, d=1 costs 2*(20+1) = 42 and b=3, d=1 costs
    2*(30+2) = 64, so b=2, d=1 (one proposed instruction against the seed). With r=1 it is b=5, d=1 (54). Budget
    300 of task calls, n=30, r=1: b=10, d=1 (300). Ties in candidates evaluated go to the larger breadth (COPRO's
    defaults favour breadth, 10 over 3). When not even b=2, d=1 fits, it runs that anyway and the proxy cuts it
    off.
    """

    def cost(b: int, d: int) -> int:
        proposals = (b - 1) + (d - 1) * b if proposer_counts else 0
        return math.ceil(per_prediction * (d * b * n_select + proposals))

    best = (2, 1, cost(2, 1))
    for depth in range(1, COPRO_MAX_DEPTH + 1):
        for breadth in range(2, COPRO_MAX_BREADTH + 1):
            spent = cost(breadth, depth)
            if spent <= budget and (breadth * depth, breadth) > (best[0] * best[1], best[0]):
                best = (breadth, depth, spent)
    return best


def _mipro_knobs(budget: int, n_train: int, n_dev: int, per_prediction: float,
                 proposer_counts: bool = True) -> dict[str, int]:
    """MIPROv2's knobs for a budget (`auto=None`): the most TPE trials that fit after bootstrapping.

    With 4 candidates DSPy builds 4 demo sets (zero-shot, labeled-only, 2 bootstrapped: each runs the program over
    train until `MIPRO_BOOTSTRAPPED` predictions succeed, estimated at `MIPRO_SUCCESS_GUESS`) and proposes 4
    instructions; then it evaluates the default program on all of dev (n), runs T minibatch trials of m = n // 3
    examples (DSPy's 35 is more than this dev), and a full dev evaluation after every 5 trials and at the end.
    Task predictions: bootstrap + n + T*m + ceil(T/5)*n; each costs r calls. Proposer calls (when paid from the
    budget): ~ceil(n_train / 10) + 1 data-summary calls, 2 program-description calls, 4 proposals. Full evaluations
    of a candidate already seen on a minibatch hit DSPy's in-run cache for those examples, so this is an upper
    estimate. E.g. budget 300 task calls, n_train 60, n_dev 30, r=1: m=10, T=15 (8 + 30 + 150 + 90 = 278 calls).
    """
    minibatch = max(1, min(35, n_dev // 3))
    bootstrap = 2 * min(n_train, math.ceil(MIPRO_BOOTSTRAPPED / MIPRO_SUCCESS_GUESS))
    proposer = (math.ceil(n_train / 10) + 1 + 2 + MIPRO_CANDIDATES) if proposer_counts else 0

    def cost(trials: int) -> int:
        full = math.ceil(trials / MIPRO_FULL_EVAL_STEPS)
        return math.ceil(per_prediction * (bootstrap + n_dev + trials * minibatch + full * n_dev)) + proposer

    trials = 1
    while cost(trials + 1) <= budget:
        trials += 1
    return {"num_candidates": MIPRO_CANDIDATES, "num_trials": trials, "minibatch_size": minibatch,
            "minibatch_full_eval_steps": MIPRO_FULL_EVAL_STEPS, "max_bootstrapped_demos": MIPRO_BOOTSTRAPPED,
            "max_labeled_demos": MIPRO_LABELED, "estimated_calls": cost(trials)}


def _mipro_light_estimate(n_train: int, n_dev: int, per_prediction: float) -> dict[str, int]:
    """What MIPROv2 auto="light" asks for with one predictor and demos on (DSPy 3.4 AUTO_RUN_SETTINGS n=6).

    num_trials = max(2*2*log2(6), 1.5*6) = 10; 3 instruction candidates; 6 demo sets, of which 4 are bootstrapped
    (each runs the program over the train examples until 4 succeed: at most n_train predictions); prompt model:
    ~10 data-summary calls (fewer for small train sets) + 3 proposals + 2 program-description calls; task model:
    the default program plus 10 trials, each a full dev evaluation (no minibatching below 50 dev examples).
    """
    trials = int(max(2 * 2 * math.log2(6), 1.5 * 6))
    bootstrap = 4 * n_train
    evaluations = (trials + 1) * n_dev
    proposer = 10 + 3 + 2
    return {
        "trials": trials,
        "bootstrap_predictions_max": bootstrap,
        "evaluation_predictions": evaluations,
        "proposer_calls": proposer,
        "estimated_calls_max": math.ceil(per_prediction * (bootstrap + evaluations + proposer)),
    }


# -- the program's result -----------------------------------------------------------------------------------------
def _strip_format(instruction: str, output_format: str) -> str:
    """The harness appends the task's output-format line itself: drop it when the instruction still ends with it."""
    text, fmt = instruction.strip(), output_format.strip()
    if fmt and text.endswith(fmt) and len(text) > len(fmt):
        text = text[: -len(fmt)].rstrip()
    return text


def _field(demo: Any, name: str) -> str | None:
    try:
        value = demo.get(name) if hasattr(demo, "get") else getattr(demo, name, None)
    except Exception:
        value = None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _extract(program: Any, job: Job) -> tuple[str, list[Pair], dict[str, Any]]:
    """The final prompt as (instruction, demos, notes) from the program's single predictor."""
    predictor = program.predictors()[0]
    signature = predictor.signature
    instruction = _strip_format(signature.instructions or "", job.output_format) or job.instruction
    demos, dropped = [], 0
    for demo in predictor.demos or []:
        text, answer = _field(demo, "input"), _field(demo, "answer")
        if text is None or answer is None:
            dropped += 1
            continue
        demos.append(Pair(input=text, target=answer))
    notes: dict[str, Any] = {"demos_dropped": dropped}
    prefix = (signature.output_fields["answer"].json_schema_extra or {}).get("prefix")
    if prefix:
        notes["answer_prefix"] = prefix  # COPRO also proposes one; DSPy's ChatAdapter does not render it
    return instruction, demos, notes


def _same_program(a: Any, b: Any) -> bool:
    pa, pb = a.predictors()[0], b.predictors()[0]
    return pa.signature.instructions == pb.signature.instructions and len(pa.demos) == len(pb.demos)


# -- the run ------------------------------------------------------------------------------------------------------
def _setup_environment(job: Job, out: Path) -> Path:
    """Environment that must be set before dspy or litellm is imported; returns the log file path."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network for LiteLLM's price map
    if not os.environ.get("DSPY_CACHEDIR"):  # the harness sets a per-run one; else confine it to out_dir
        cache_dir = out / "dspy_cache"
        shutil.rmtree(cache_dir, ignore_errors=True)  # nothing cached from an earlier run in the same out_dir
        os.environ["DSPY_CACHEDIR"] = str(cache_dir)
    os.environ.setdefault("OPENAI_API_KEY", "none")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    random.seed(job.seed)
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed(job.seed)
    return out / "dspy.log"


def _setup_logging(log_file) -> None:
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if name in ("dspy", "gepa") else logging.WARNING)
        logger.propagate = False

    class StageEcho(logging.Handler):
        """Echo DSPy's stage headers (MIPRO steps, COPRO depths) to stdout as progress lines."""

        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage().strip()
            if message.startswith(("==> STEP", "Iteration Depth")):
                TRACK.say(f"{TRACK.stage}: {message.strip('=<> ')}")

    logging.getLogger("dspy").addHandler(StageEcho())


def _make_callback(dspy: Any, job: Job) -> Any:
    """A DSPy callback that counts parse outcomes and records every complete dev/selection-set evaluation."""
    from dspy.utils.callback import BaseCallback

    class Recorder(BaseCallback):
        def __init__(self) -> None:
            self.parsers: dict[str, str] = {}
            self.pending: dict[str, tuple[Any, tuple[str, ...]]] = {}

        def on_adapter_parse_start(self, call_id, instance, inputs):
            self.parsers[call_id] = type(instance).__name__

        def on_adapter_parse_end(self, call_id, outputs, exception=None):
            name = self.parsers.pop(call_id, "adapter")
            counts = TRACK.parse.setdefault(name, {"ok": 0, "failed": 0})
            counts["failed" if exception is not None else "ok"] += 1

        def on_evaluate_start(self, call_id, instance, inputs):
            program = inputs.get("program")
            devset = inputs.get("devset") or instance.devset or []
            if program is not None:
                keys = tuple(sorted(str(example.get("input")) for example in devset))
                self.pending[call_id] = (program.deepcopy(), keys)

        def on_evaluate_end(self, call_id, outputs, exception=None):
            entry = self.pending.pop(call_id, None)
            if entry is None or outputs is None or exception is not None:
                return
            score = float(outputs.score) / 100.0
            TRACK.evaluations.append(Evaluation(entry[0], score, entry[1]))
            if len(entry[1]) == len(job.dev):
                TRACK.say(f"{TRACK.stage}: evaluation {len(TRACK.evaluations)} on {len(entry[1])} examples: "
                          f"{score:.2f} ({TRACK.total_calls} calls so far)")

    return Recorder()


def _make_lm(dspy: Any, job: Job, *, proposer: bool = False) -> Any:
    """The task LM (or, `proposer`, the proposer LM) behind its proxy account: no retries, budget refusals raised as
    BudgetCut, every request counted by role."""

    class CappedLM(dspy.LM):
        role = "proposer" if proposer else "task"

        def _sent(self, kwargs: dict[str, Any], hits_before: int) -> None:
            """Count a request unless DSPy's cache answered it (then it never reached the proxy)."""
            if TRACK.cache_hits == hits_before:
                n = int(kwargs.get("n") or self.kwargs.get("n") or 1)
                TRACK.calls[self.role] = TRACK.calls.get(self.role, 0) + n

        def _refused(self, exc: BaseException) -> BudgetCut:
            TRACK.refused += 1
            TRACK.refusal = f"proxy refused a call during {TRACK.stage}: {str(exc).strip().splitlines()[0][:300]}"
            return BudgetCut(TRACK.refusal)

        @contextlib.contextmanager
        def _guarded(self, kwargs: dict[str, Any]) -> Any:
            """One request, sync or async: stop after a refusal, translate a new one, count what was sent."""
            if TRACK.refused:
                raise BudgetCut(TRACK.refusal)
            hits = TRACK.cache_hits
            try:
                yield
            except Exception as exc:
                if is_budget_refusal(exc):
                    raise self._refused(exc) from exc
                raise
            finally:
                self._sent(kwargs, hits)

        def __call__(self, *args, **kwargs):
            with self._guarded(kwargs):
                return super().__call__(*args, **kwargs)

        async def acall(self, *args, **kwargs):
            with self._guarded(kwargs):
                return await super().acall(*args, **kwargs)

    return CappedLM(
        "openai/" + (job.proposer if proposer else job.model),
        api_base=job.proposer_url if proposer else job.base_url,
        api_key=os.environ.get("OPENAI_API_KEY", "none"),
        max_tokens=job.max_tokens,
        temperature=0.0,
        cache=True,  # in-memory only (configured below), within this run
        num_retries=0,
    )


def _best_recorded(keys: tuple[str, ...]) -> Evaluation | None:
    """The best complete evaluation on the selection set; ties go to the earliest (the seed is evaluated first)."""
    best = None
    for evaluation in TRACK.evaluations:
        if evaluation.keys == keys and (best is None or evaluation.score > best.score):
            best = evaluation
    return best


def _run_mipro(dspy: Any, job: Job, program: Any, metric: Any, train: list, dev: list, out: Path,
               notes: dict[str, Any], proposer_lm: Any) -> tuple[Any, float | None]:
    from dspy.teleprompt import MIPROv2

    if job.options.get("auto") == "light":
        notes["knobs"] = {"auto": "light", "seed": job.seed, "num_threads": 1}
        optimizer = MIPROv2(metric=metric, prompt_model=proposer_lm, task_model=dspy.settings.lm, auto="light",
                            num_threads=1, max_errors=UNLIMITED_ERRORS, seed=job.seed, verbose=False,
                            track_stats=True, log_dir=str(out / "mipro"))
        best = optimizer.compile(program, trainset=train, valset=dev, seed=job.seed)
    else:
        per_prediction = float(job.options.get("calls_per_prediction", DEFAULT_CALLS_PER_PREDICTION))
        knobs = _mipro_knobs(job.budget_calls, len(train), len(dev), per_prediction, not job.separate_proposer)
        notes["knobs"] = {**knobs, "auto": None, "seed": job.seed, "num_threads": 1,
                          "calls_per_prediction": per_prediction}
        TRACK.say(f"mipro: {knobs['num_trials']} trials on minibatches of {knobs['minibatch_size']} (estimated "
                  f"{knobs['estimated_calls']} calls of {job.budget_calls})")
        optimizer = MIPROv2(metric=metric, prompt_model=proposer_lm, task_model=dspy.settings.lm, auto=None,
                            num_candidates=knobs["num_candidates"], max_bootstrapped_demos=knobs[
                                "max_bootstrapped_demos"], max_labeled_demos=knobs["max_labeled_demos"],
                            num_threads=1, max_errors=UNLIMITED_ERRORS, seed=job.seed, verbose=False,
                            track_stats=True, log_dir=str(out / "mipro"))
        best = optimizer.compile(program, trainset=train, valset=dev, seed=job.seed, num_trials=knobs["num_trials"],
                                 minibatch_size=knobs["minibatch_size"],
                                 minibatch_full_eval_steps=knobs["minibatch_full_eval_steps"])
    notes["trials"] = len(getattr(best, "trial_logs", {}) or {})
    notes["full_evaluations"] = len(getattr(best, "candidate_programs", []) or [])
    score = getattr(best, "score", None)
    return best, None if score is None else float(score) / 100.0


def _run_copro(dspy: Any, job: Job, program: Any, metric: Any, train: list, dev: list, out: Path,
               notes: dict[str, Any], proposer_lm: Any) -> tuple[Any, float | None]:
    from dspy.teleprompt import COPRO

    per_prediction = float(job.options.get("calls_per_prediction", DEFAULT_CALLS_PER_PREDICTION))
    breadth, depth, estimate = _copro_knobs(job.budget_calls, len(dev), per_prediction, not job.separate_proposer)
    notes["knobs"] = {"breadth": breadth, "depth": depth, "estimated_calls": estimate,
                      "calls_per_prediction": per_prediction, "selection_set": "dev"}
    TRACK.say(f"copro: breadth={breadth} depth={depth} (estimated {estimate} calls of {job.budget_calls})")
    optimizer = COPRO(prompt_model=proposer_lm, metric=metric, breadth=breadth, depth=depth, track_stats=True)
    # eval_kwargs go to Evaluate's constructor and to each call, so only keys both accept (max_errors and
    # failure_score come from dspy.settings and Evaluate's default 0.0).
    best = optimizer.compile(program, trainset=dev, eval_kwargs={"num_threads": 1, "display_progress": False})
    candidates = getattr(best, "candidate_programs", []) or []
    notes["candidates_evaluated"] = len(candidates)
    notes["candidate_scores"] = [round(float(c["score"]) / 100.0, 4) for c in candidates]
    return best, float(candidates[0]["score"]) / 100.0 if candidates else None


def _run_gepa(dspy: Any, job: Job, program: Any, metric: Any, train: list, dev: list, out: Path,
              notes: dict[str, Any], proposer_lm: Any) -> tuple[Any, float | None]:
    labels = job.labels

    def feedback_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        got = getattr(pred, "answer", None) if pred is not None else None
        correct = isinstance(got, str) and answer_matches(got, gold.answer, labels)
        if not isinstance(got, str):
            feedback = f"The output could not be parsed into an answer. The expected answer is {gold.answer!r}."
        else:
            verdict = "correct" if correct else "wrong"
            feedback = f"Expected answer: {gold.answer!r}. Got: {got.strip()[:200]!r}. This is {verdict}."
        return dspy.Prediction(score=float(correct), feedback=feedback)

    budget = job.budget_calls
    per_prediction = float(job.options.get("calls_per_prediction", DEFAULT_CALLS_PER_PREDICTION))
    share = 1.0 if job.separate_proposer else GEPA_METRIC_SHARE
    max_metric_calls = max(1, int(share * budget))  # an upper bound: the stopper below counts the real LM calls
    reflection_cost = 0 if job.separate_proposer else GEPA_REFLECTION_WORST
    minibatch = 3  # dspy.GEPA's reflection_minibatch_size default

    class CallBudgetStopper:
        """Stop before an iteration whose minibatch stage (parent and child on a reflection minibatch, plus the
        reflection) would overrun the LM-call budget. An accepted child's full dev evaluation may still be cut off
        by the proxy; the run then reports the best fully evaluated candidate, as GEPA would have."""

        def __init__(self) -> None:
            self.stopped_at: int | None = None

        def __call__(self, gepa_state: Any) -> bool:
            metric_calls = max(1, int(getattr(gepa_state, "total_num_evals", 0) or 0))
            per_metric = max(1.0, TRACK.calls.get("task", 0) / metric_calls)
            needed = per_metric * 2 * minibatch + reflection_cost
            stop = TRACK.budgeted(job) + needed > budget
            if stop and self.stopped_at is None:
                self.stopped_at = TRACK.budgeted(job)
                TRACK.say(f"gepa: stopping at {TRACK.budgeted(job)} budgeted calls (an iteration needs "
                          f"~{needed:.0f} more)")
            return stop

    stopper = CallBudgetStopper()
    reflection_lm = proposer_lm.copy(temperature=1.0)
    reflection_lm.role = "reflection"
    notes["knobs"] = {"max_metric_calls": max_metric_calls, "reflection_minibatch_size": minibatch,
                      "calls_per_prediction": per_prediction,
                      "reflection_temperature": 1.0, "seed": job.seed, "num_threads": 1,
                      "stopper": "LM calls + next minibatch stage <= budget"}
    gepa_dir = out / "gepa"
    shutil.rmtree(gepa_dir, ignore_errors=True)  # GEPA resumes from run_dir state if it exists
    optimizer = dspy.GEPA(metric=feedback_metric, max_metric_calls=max_metric_calls, reflection_lm=reflection_lm,
                          reflection_minibatch_size=minibatch, num_threads=1, failure_score=0.0, perfect_score=1.0,
                          seed=job.seed, track_stats=True, log_dir=str(gepa_dir),
                          gepa_kwargs={"stop_callbacks": [stopper]})
    best = optimizer.compile(program, trainset=train, valset=dev)
    notes["gepa_stopper_at_calls"] = stopper.stopped_at
    results = getattr(best, "detailed_results", None)
    if results is None:
        return best, None
    notes["candidates"] = len(results.candidates)
    notes["candidate_scores"] = [round(float(s), 4) for s in results.val_aggregate_scores]
    notes["metric_calls"] = getattr(results, "total_metric_calls", None)
    return best, float(results.val_aggregate_scores[results.best_idx])


RUNNERS = {"dspy-mipro": _run_mipro, "dspy-gepa": _run_gepa, "dspy-copro": _run_copro}


def run(job: Job, out: Path, log_file) -> PeerResult:
    import dspy

    _setup_logging(log_file)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    cache_get = dspy.cache.get

    def counting_get(*args, **kwargs):  # only counts: cache hits never reach the proxy
        record = cache_get(*args, **kwargs)
        if record is not None:
            TRACK.cache_hits += 1
        return record

    dspy.cache.get = counting_get
    lm = _make_lm(dspy, job)
    proposer_lm = _make_lm(dspy, job, proposer=True)
    dspy.configure(lm=lm, num_threads=1, max_errors=UNLIMITED_ERRORS, callbacks=[_make_callback(dspy, job)])

    seed_instructions = f"{job.instruction} {job.output_format}".strip()
    program = dspy.Predict(dspy.Signature("input -> answer", seed_instructions))
    train = [dspy.Example(input=p.input, answer=p.target).with_inputs("input") for p in job.train]
    dev = [dspy.Example(input=p.input, answer=p.target).with_inputs("input") for p in job.dev]
    if not dev:  # no dev split: select on train, as DSPy itself does without a valset
        dev = train
    labels = job.labels

    def metric(example, prediction, trace=None):
        got = getattr(prediction, "answer", None) if prediction is not None else None
        return float(isinstance(got, str) and answer_matches(got, example.answer, labels))

    notes: dict[str, Any] = {}
    per_prediction = float(job.options.get("calls_per_prediction", DEFAULT_CALLS_PER_PREDICTION))
    if job.system == "dspy-mipro" and job.options.get("auto") == "light":
        notes["mipro_light_estimate"] = _mipro_light_estimate(len(train), len(dev), per_prediction)
        TRACK.say(f"mipro: auto=light needs up to ~{notes['mipro_light_estimate']['estimated_calls_max']} calls "
                  f"(budget {job.budget_calls})")
    selection_keys = tuple(sorted(str(example.get("input")) for example in dev))

    TRACK.stage = job.system.removeprefix("dspy-")
    TRACK.say(f"{TRACK.stage}: compiling (train {len(train)}, dev {len(dev)}, budget {job.budget_calls})")
    status, detail_parts, best, score = "ok", [], None, None
    try:
        with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
            best, score = RUNNERS[job.system](dspy, job, program, metric, train, dev, out, notes, proposer_lm)
    except BudgetCut:
        status = "cut_off"
        detail_parts.append(TRACK.refusal)
    except Exception as exc:  # DSPy itself raised (e.g. COPRO cannot parse its own proposer's output)
        log_file.write(traceback.format_exc())
        status = "cut_off" if TRACK.refused or is_budget_refusal(exc) else "failed"
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        detail_parts.append(f"DSPy raised {type(exc).__name__}: {first_line} (during {TRACK.stage}, after "
                            f"{TRACK.total_calls} calls)")
    if status != "ok":
        recovered = _best_recorded(selection_keys)
        if recovered is not None:
            best, score = recovered.program, recovered.score
            detail_parts.append(f"reporting the best program DSPy had fully evaluated on dev ({score:.2f})")
        else:
            best, score = program, None
            detail_parts.append("no candidate was fully evaluated on dev, reporting the seed program")
    TRACK.stage = "done"

    instruction, demos, extract_notes = _extract(best, job)
    notes.update(extract_notes)
    notes["final_is_seed"] = _same_program(best, program) and not demos
    notes["full_dev_evaluations"] = [round(e.score, 4) for e in TRACK.evaluations if e.keys == selection_keys]
    if status == "ok" and notes["final_is_seed"]:
        detail_parts.append(f"kept the seed program: no candidate scored above it on dev (full dev evaluations "
                            f"{notes['full_dev_evaluations']})")
    chat, fallback = TRACK.parse.get("ChatAdapter", {}), TRACK.parse.get("JSONAdapter", {})
    detail_parts.append(
        f"parse failures: ChatAdapter {chat.get('failed', 0)}/{chat.get('failed', 0) + chat.get('ok', 0)}, "
        f"JSONAdapter (fallback and GEPA's proposer) {fallback.get('failed', 0)}/"
        f"{fallback.get('failed', 0) + fallback.get('ok', 0)}; unparsed predictions score 0")
    detail_parts.append("no logprob scoring: DSPy only sees generated text")
    return PeerResult(status=status, instruction=instruction, demos=demos, detail="; ".join(detail_parts),
                      version=dspy.__version__, internal_score=score, extra=notes)


def main() -> int:
    job = main_job()
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log_path = _setup_environment(job, out)
    with open(log_path, "w", encoding="utf-8") as log_file:
        TRACK.log = log_file
        TRACK.say(f"{job.system} on {job.task} (seed {job.seed}, budget {job.budget_calls} calls)")
        try:
            if job.system not in SYSTEMS:
                raise ValueError(f"unknown system {job.system!r}; expected one of {SYSTEMS}")
            result = run(job, out, log_file)
        except BaseException as exc:  # the result must be written whatever happened
            if isinstance(exc, KeyboardInterrupt | SystemExit) and not TRACK.refused:
                raise
            log_file.write(traceback.format_exc())
            status = "cut_off" if TRACK.refused or is_budget_refusal(exc) else "failed"
            first_line = (str(exc).strip().splitlines() or [""])[0][:500]
            result = PeerResult(status=status, instruction=job.instruction,
                                detail=f"{type(exc).__name__}: {first_line} (during {TRACK.stage}); seed "
                                       f"instruction reported", version=_dspy_version())
        result.extra.update({
            "system": job.system,
            "lm_requests_by_role": dict(TRACK.calls),
            "lm_requests": TRACK.total_calls,  # sent to the proxy, a refused one included
            "cache_hits": TRACK.cache_hits,
            "refused_seen": TRACK.refused,
            "parse": TRACK.parse,
            "evaluations": len(TRACK.evaluations),
            "wall_s": round(time.monotonic() - started, 1),
            "log": str(log_path),
        })
        result.write(job.result_path)
        TRACK.say(f"{result.status}: internal score {result.internal_score}, {len(result.demos)} demos, "
                  f"{TRACK.total_calls} calls, {result.extra['wall_s']} s -> {job.result_path}")
    return 0


def _dspy_version() -> str:
    try:
        from importlib.metadata import version

        return version("dspy")
    except Exception:
        return ""


if __name__ == "__main__":
    sys.exit(main())
