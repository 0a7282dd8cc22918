"""Run promptolution's optimizers (OPRO, EvoPrompt GA, CAPO) as peer systems.

`job.system` is "promptolution-opro", "promptolution-evoprompt" (EvoPromptGA) or "promptolution-capo". The runner
builds promptolution's own pieces and calls `optimizer.optimize(...)`; it changes no library code. Choices:

- LLM: `APILLM`. APILLM sends one HTTP request per prompt (a "batch" is gathered concurrently on a background
  event loop), so the proxy's count is the number of prompts the optimizer sends. Two APILLM objects: the task
  model on `job.base_url` at temperature 0 and the meta model on the job's proposer account at temperature 1.0
  (the OPRO paper's scorer / optimizer temperatures). They share one call counter when one model plays both roles;
  with a separate proposer (`job.separate_proposer`) the meta LLM's calls are counted apart and the budget is the
  task model's calls; per-request seeds derive from `job.seed` (APILLM's `set_generation_seed` is a
  no-op; here it sets the request seed, which OPRO calls before each new instruction). `max_tokens` is
  `job.max_tokens`; APILLM's own retries (5, on any error) are off, so the proxy's 403 is never retried; the
  OpenAI client still retries connection errors and 5xx, which the proxy does not charge. At most 4 requests are
  in flight (APILLM's default is 32; the server is one shared CPU process).
- Task: the dev split (deduplicated) is promptolution's task, i.e. the data its optimizers score candidates on;
  train is CAPO's few-shot pool (`df_few_shots`, instead of popping 10% of dev). With labels: `ClassificationTask`
  (labels lowercased, accuracy). Free-form answers: `RewardTask` whose reward is `answer_matches(output, target)`.
- Predictor: a `BasePredictor` subclass that reads the answer the way `answer_matches` does: the first label the
  output mentions, whole word (FirstOccurrencePredictor's rule, which suits a 135M model that answers in sentences;
  MarkerBasedPredictor needs `<final_answer>` tags such a model does not write). Unlike FirstOccurrencePredictor it
  does not default to the first class when no label is found (that would score a non-answer as right for one
  class), and it handles multi-word and non-lowercase labels. It also appends the task's fixed output-format line
  after each input (the harness appends that line at test time; it is never part of the optimized text).
  Otherwise the layout is the library's: `<prompt>\\n<input>`, default system prompt.
- Initial prompts: the seed instruction, plus (for the population methods) up to 9 generic variants written here
  (`VARIANTS`): a role, a "read carefully", an answer-only cue and the like; no task knowledge. OPRO starts from the
  seed alone, as in the OPRO paper.
- Budget (the proxy caps `job.budget_calls`; this runner plans so that the proxy never has to refuse). With E the
  dev examples a candidate is scored on, B the budget and M = 1 when meta calls are paid from it (one model plays
  both roles) else 0; the formulas below are written for M = 1, and M = 0 drops the meta calls from each:
  OPRO: seed scoring E, then 1 meta call + E task calls per new instruction (a duplicate costs 1). N = (B - E) //
  (E + 1) instructions fit; `num_instructions_per_step` (default 8) = min(8, max(1, N // 2)) so at least two steps
  feed scores back into the meta-prompt; `max_num_instructions` 20 and `num_few_shots` 3 stay at their defaults.
  EvoPrompt GA: population P costs P*E to score, then P*(E + 1) per generation. P is the largest in 2..10 with at
  least P generations (EvoPrompt's defaults are P = T = 10), else 2; selection "wheel" (default).
  CAPO: block size = min(30 (the default), dev // 2) so racing has at least two blocks, `max_n_blocks_eval` =
  min(10, blocks); `upper_shots` 5, `alpha` 0.2, `length_penalty` 0.05 are defaults; `crossovers_per_iter` C =
  min(4, P). Worst case of a step: 2C meta calls, C task calls for new few-shot reasoning, and (P + C) candidates on
  every racing block; population initialization costs at most P * upper_shots task calls. P is the largest in
  2..10 whose initialization plus first step fits.
  Step guard (`job.options["step_guard"]`): "worst_case" (default) runs a step only when the calls left cover its
  worst case, computed from the current state (cached evaluations are free), so a run stops on budget and is
  never cut off, at the price of leaving up to one step's worth unspent. "optimistic" runs a step when its
  cheapest useful outcome fits (OPRO: one new instruction scored; GA: the whole generation; CAPO: racing ends
  after the first block); a step the proxy then cuts off leaves the population as it was (OPRO keeps the
  instructions it scored), and the status is "cut_off". If even the smallest configuration does not fit, the
  dev examples used for scoring are truncated.
- Result: the best prompt by the optimizer's own ranking; `internal_score` is its accuracy on the dev examples it
  was scored on (for CAPO without the length penalty). CAPO's few-shot examples are returned as demos: input and
  the output text CAPO shows (the task model's own answer when it was right, as CAPO's `create_fs_reasoning`
  does, else the gold target).

Logs: one progress line per stage on stdout (the harness keeps stdout in runner.log); promptolution's own log
and warnings go to `promptolution-verbose.log` in `job.out_dir`. No disk cache exists in promptolution; the
task's in-run evaluation cache dies with the process.

What these peers cannot use here: label log-probabilities (promptolution's API predictors read generated text
only), and, without a separate proposer, a capable meta-LLM (the 135M task model also writes the new prompts, and
often ignores the `<prompt>` tags; promptolution then uses the whole reply as the new prompt).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.peers.job import Job, Pair, PeerResult, answer_matches, is_budget_refusal, main_job

SYSTEMS = {"promptolution-opro": "opro", "promptolution-evoprompt": "evoprompt-ga", "promptolution-capo": "capo"}
MAX_IN_FLIGHT = 4
TASK_TEMPERATURE = 0.0
META_TEMPERATURE = 1.0
MAX_STEPS = 1000  # the budget, not a step count, ends a run
# Generic variants of the seed instruction for the population methods (no task knowledge).
VARIANTS = (
    "{seed}",
    "Read the input carefully. {seed}",
    "{seed} Give only the answer.",
    "You are an expert annotator. {seed}",
    "{seed} Think about what the text means, then answer.",
    "Task: {seed}",
    "{seed} Be concise and precise.",
    "Here is an input to process. {seed}",
    "{seed} Make sure your answer is correct.",
    "Instruction: {seed} Respond with the answer.",
)

log = logging.getLogger("promptolution_runner")


def _progress(system: str, message: str) -> None:
    print(f"[{system}] {message}", flush=True)
    log.info(message)


class BudgetStop(Exception):
    """Raised before a step whose worst case the calls left cannot cover; promptolution ends its loop on it."""


class Ledger:
    """The calls the proxy charges (answered requests), shared by the task and meta LLMs, and its refusals."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.calls = 0
        self.refused = 0
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        return self.budget - self.calls

    def charge(self) -> None:
        with self._lock:
            self.calls += 1

    def refusal(self) -> None:
        with self._lock:
            self.refused += 1


def _make_llm(job: Job, ledger: Ledger, temperature: float, seed_offset: int, *, proposer: bool = False) -> Any:
    from promptolution.llms import APILLM

    class CountedAPILLM(APILLM):
        """APILLM that counts charged calls, seeds every request, and never retries (the client handles 5xx).

        `_ainvoke_once` is APILLM's own request (same messages, `max_tokens`, semaphore and per-call timeout) plus
        a per-request `seed`: the one OPRO sets with `set_generation_seed` (a no-op in APILLM), else one derived
        from `job.seed` and the request's number, so that sampled meta-prompt replies are reproducible yet not
        all the same sample.
        """

        requests = 0
        next_seed: int | None = None

        def set_generation_seed(self, seed: int) -> None:
            self.next_seed = int(seed)

        async def _ainvoke_once(self, prompt: str, system_prompt: str) -> Any:
            CountedAPILLM.requests += 1
            seed, self.next_seed = self.next_seed, None
            if seed is None:
                seed = (job.seed * 1_000_003 + seed_offset + CountedAPILLM.requests) % 2**31
            kwargs: dict[str, Any] = {
                "model": self.model_id, "max_tokens": self.max_tokens, "seed": seed,
                "messages": [{"role": "system", "content": str(system_prompt)},
                             {"role": "user", "content": str(prompt)}],
                **self._call_kwargs}
            async with self._sem:
                try:
                    reply = await asyncio.wait_for(self.client.chat.completions.create(**kwargs),
                                                   timeout=self.call_timeout_s)
                except Exception as exc:
                    if is_budget_refusal(exc):
                        ledger.refusal()
                    raise
            ledger.charge()
            return reply

    return CountedAPILLM(api_url=job.proposer_url if proposer else job.base_url,
                         model_id=job.proposer if proposer else job.model,
                         api_key=os.environ.get("OPENAI_API_KEY", "local"),
                         max_concurrent_calls=MAX_IN_FLIGHT, max_tokens=job.max_tokens, call_timeout_s=900.0,
                         gather_timeout_s=6 * 3600.0, max_retries=0, call_kwargs={"temperature": temperature})


def _make_predictor(llm: Any, labels: list[str] | None, output_format: str) -> Any:
    from promptolution.predictors.base_predictor import BasePredictor

    class AnswerPredictor(BasePredictor):
        """The first label the output mentions (answer_matches' rule); the raw output for free-form tasks."""

        def __init__(self) -> None:
            super().__init__(llm)
            self.classes = [label.lower() for label in labels] if labels else None
            self.output_format = output_format.strip()
            if self.classes:  # FirstOccurrencePredictor's description; it goes into the meta-prompts
                self.extraction_description = (
                    f"The task is to classify the texts into one of those classes: {', '.join(self.classes)}."
                    "The first occurrence of a valid class label in the prediction is used as the predicted class.")

        def predict(self, prompts: Any, xs: list[str], system_prompts: Any = None) -> tuple[list[str], list[str]]:
            if isinstance(prompts, str):
                prompts = [prompts]
            tail = f"\n{self.output_format}" if self.output_format else ""
            inputs = [f"{prompt}\n{x}{tail}" for prompt, x in zip(prompts, xs, strict=True)]
            outputs = self.llm.get_response(inputs, system_prompts=system_prompts)
            return self._extract_preds(outputs), [f"{x}\n{out}" for x, out in zip(xs, outputs, strict=True)]

        def _extract_preds(self, preds: list[str]) -> list[str]:
            if not self.classes:
                return list(preds)
            return [next((c for c in self.classes if answer_matches(p, c, self.classes)), "") for p in preds]

    return AnswerPredictor()


def _dedupe(pairs: list[Pair]) -> list[Pair]:
    """Unique inputs, first kept (promptolution's tasks drop duplicate inputs, and ClassificationTask then misaligns
    its labels)."""
    unique: dict[str, Pair] = {}
    for pair in pairs:
        unique.setdefault(pair.input, pair)
    return list(unique.values())


def _make_task(job: Job, dev: list[Pair], description: str, *, block: int | None) -> Any:
    import pandas as pd
    from promptolution.tasks import ClassificationTask, RewardTask

    df = pd.DataFrame({"x": [p.input for p in dev], "y": [p.target for p in dev]})
    strategy = "sequential_block" if block else "full"
    common = dict(task_description=description, x_column="x", y_column="y", n_subsamples=block or len(dev),
                  eval_strategy=strategy, seed=job.seed)
    if job.labels:
        df["y"] = df["y"].str.lower()
        return ClassificationTask(df, **common)

    def reward(prediction: str, y: str) -> float:
        return float(answer_matches(prediction, y, None))

    return RewardTask(df, reward_function=reward, reward_columns=["y"], **common)


def _uncached(task: Any, prompt: Any, xs: list[str], ys: list[str]) -> int:
    key = prompt.construct_prompt()
    return sum((key, x, str(y)) not in task.eval_cache for x, y in zip(xs, ys, strict=True))


def _cached_accuracy(task: Any, prompt: Any) -> tuple[float | None, int]:
    """The prompt's mean score over the dev examples it has been scored on (no penalties), and how many."""
    key = prompt.construct_prompt()
    scores = [task.eval_cache[(key, x, str(y))] for x, y in zip(task.xs, task.ys, strict=True)
              if (key, x, str(y)) in task.eval_cache]
    return (float(sum(scores) / len(scores)), len(scores)) if scores else (None, 0)


def plan(method: str, budget: int, n_dev: int, meta_counts: bool = True) -> dict[str, int]:
    """The knobs for a budget (see the module docstring for the arithmetic); `dev` is the examples to score on.
    `meta_counts`: whether the meta LLM's calls are paid from `budget` (False with a separate proposer)."""
    m = int(meta_counts)
    if method == "opro":
        dev = n_dev if budget >= n_dev + 2 * (n_dev + m) else max(1, (budget - 2 * m) // 3)
        n_new = (budget - dev) // (dev + m)
        return {"dev": dev, "population": 1, "per_step": min(8, max(1, n_new // 2)), "planned_new": n_new}
    if method == "evoprompt-ga":
        dev = n_dev if budget >= 2 * n_dev + 2 * (n_dev + m) else max(1, (budget - 2 * m) // 4)
        fits = [p for p in range(2, len(VARIANTS) + 1) if p * dev + p * p * (dev + m) <= budget]
        population = max(fits) if fits else 2
        return {"dev": dev, "population": population,
                "planned_generations": (budget - population * dev) // (population * (dev + m))}
    upper_shots = 5

    def capo(dev: int) -> dict[str, int] | None:
        block = max(1, min(30, dev // 2))
        blocks = min(10, dev // block)
        raced = blocks * block
        for population in range(len(VARIANTS), 1, -1):
            crossovers = min(4, population)
            if population * upper_shots + (2 * m + 1) * crossovers + (population + crossovers) * raced <= budget:
                return {"dev": dev, "population": population, "crossovers": crossovers, "block": block,
                        "blocks": blocks, "upper_shots": upper_shots}
        return None

    for dev in range(n_dev, 0, -1):
        knobs = capo(dev)
        if knobs is not None:
            return knobs
    raise ValueError(f"budget {budget} cannot fit CAPO's population initialization and one step")


def run(job: Job, method: str, ledger: Ledger, state: dict[str, Any], meta_ledger: Ledger | None = None) -> PeerResult:
    import numpy as np
    import pandas as pd
    from promptolution.optimizers import CAPO, OPRO, EvoPromptGA
    from promptolution.utils.prompt import Prompt, sort_prompts_by_scores

    random.seed(job.seed)
    np.random.seed(job.seed)
    m = 0 if job.separate_proposer else 1  # meta calls paid from the budget
    knobs = {**plan(method, job.budget_calls, len(_dedupe(job.dev)), meta_counts=bool(m)),
             **job.options.get("knobs", {})}
    state["knobs"] = knobs
    dev = _dedupe(job.dev)[: knobs["dev"]]
    description = f"{job.instruction} {job.output_format}".strip()
    task = _make_task(job, dev, description, block=knobs.get("block"))
    state["task"] = task
    task_llm = _make_llm(job, ledger, TASK_TEMPERATURE, seed_offset=0)
    meta_llm = _make_llm(job, meta_ledger or ledger, META_TEMPERATURE, seed_offset=500_000, proposer=True)
    predictor = _make_predictor(task_llm, job.labels, job.output_format)
    initial = [v.format(seed=job.instruction.strip()) for v in VARIANTS[: knobs["population"]]]
    state["initial"] = initial
    _progress(job.system, f"knobs {knobs}; {len(initial)} initial prompt(s); budget {job.budget_calls}")

    if method == "opro":
        optimizer = OPRO(predictor=predictor, task=task, meta_llm=meta_llm, initial_prompts=initial,
                         num_instructions_per_step=knobs["per_step"])

        def step_costs() -> tuple[int, int]:  # OPRO keeps each scored instruction even if its step is cut off
            return knobs["per_step"] * (m + len(task.xs)), m + len(task.xs)
    elif method == "evoprompt-ga":
        optimizer = EvoPromptGA(predictor=predictor, task=task, meta_llm=meta_llm, initial_prompts=initial)

        def step_costs() -> tuple[int, int]:  # every child is scored on the whole task in one batch
            cost = len(optimizer.prompts) * (m + len(task.xs))
            return cost, cost
    else:
        few_shots = _dedupe(job.train)
        df_few_shots = pd.DataFrame(
            {"x": [p.input for p in few_shots],
             "y": [p.target.lower() if job.labels else p.target for p in few_shots]})
        optimizer = CAPO(predictor=predictor, task=task, meta_llm=meta_llm, initial_prompts=initial,
                         crossovers_per_iter=knobs["crossovers"], upper_shots=knobs["upper_shots"],
                         max_n_blocks_eval=knobs["blocks"], df_few_shots=df_few_shots)
        raced = knobs["blocks"] * knobs["block"]
        race_xs, race_ys = task.xs[:raced], task.ys[:raced]

        def step_costs() -> tuple[int, int]:  # worst: every block raced; optimistic: racing ends after block 0
            crossovers, block = knobs["crossovers"], knobs["block"]
            parents = sum(_uncached(task, p, race_xs, race_ys) for p in optimizer.prompts)
            parents_first = sum(_uncached(task, p, race_xs[:block], race_ys[:block]) for p in optimizer.prompts)
            return ((2 * m + 1) * crossovers + crossovers * raced + parents,
                    (m + 1) * crossovers + crossovers * block + parents_first)
    state["optimizer"] = optimizer

    library_step = optimizer._step
    step_log: list[dict[str, Any]] = []
    state["steps"] = step_log

    guard = str(job.options.get("step_guard", "worst_case"))
    if guard not in ("worst_case", "optimistic"):
        raise ValueError(f"step_guard must be 'worst_case' or 'optimistic', not {guard!r}")

    def guarded_step() -> list[Any]:
        worst, optimistic = step_costs()
        need = worst if guard == "worst_case" else optimistic
        if need > ledger.left:
            state["stop_reason"] = (f"budget: {ledger.left} calls left < {need} for the next step "
                                    f"({guard.replace('_', ' ')} cost)")
            raise BudgetStop(state["stop_reason"])
        before = ledger.calls
        try:
            prompts = library_step()
        except Exception as exc:
            state["step_error"] = exc
            raise
        best_prompt, best_score = _best(optimizer, task, sort_prompts_by_scores)
        step_log.append({"calls": ledger.calls - before, "best_score": best_score})
        _progress(job.system, f"step {len(step_log)}: {ledger.calls - before} calls ({ledger.calls} total); best "
                  f"{best_score if best_score is None else round(best_score, 3)}: {best_prompt.instruction[:80]!r}")
        return prompts

    optimizer._step = guarded_step
    state["stop_reason"] = f"max steps {MAX_STEPS}"
    optimizer.optimize(n_steps=int(job.options.get("max_steps", MAX_STEPS)))
    error = state.get("step_error")
    if error is not None and not isinstance(error, BudgetStop):
        if is_budget_refusal(error) or ledger.refused:
            state["stop_reason"] = f"cut off by the proxy in step {len(step_log) + 1}"
            raise error  # main() reports the best prompt there is
        state["stop_reason"] = f"a step failed and promptolution ended its loop: {type(error).__name__}: {error}"
    return _result(job, "ok", state, ledger, Prompt)


def _best(optimizer: Any, task: Any, sort_prompts_by_scores: Any) -> tuple[Any, float | None]:
    """The optimizer's best prompt by its own ranking (the first candidate when nothing is ranked yet)."""
    prompts, scores = list(optimizer.prompts), list(optimizer.scores)
    if prompts and len(scores) == len(prompts):
        ranked, _ = sort_prompts_by_scores(prompts, scores)
        best = ranked[0]
    else:  # not ranked (CAPO before its first racing, or a cut-off): the best cached accuracy, ties to the seed
        scored = [(acc, -i, p) for i, p in enumerate(prompts) if (acc := _cached_accuracy(task, p)[0]) is not None]
        best = max(scored, key=lambda t: (t[0], t[1]))[2] if scored else prompts[0]
    return best, _cached_accuracy(task, best)[0]


def _demos(prompt: Any, train: list[Pair]) -> list[Pair]:
    """CAPO's few-shot strings ("Input:\\n<x>\\nOutput:\\n<y>") back as pairs."""
    demos = []
    for shot in prompt.few_shots:
        source = next((p.input for p in train if shot.startswith(f"Input:\n{p.input}\nOutput:\n")), None)
        if source is not None:
            demos.append(Pair(source, shot[len(f"Input:\n{source}\nOutput:\n"):].strip()))
        else:
            head, _, tail = shot.removeprefix("Input:\n").partition("\nOutput:\n")
            demos.append(Pair(head.strip(), tail.strip()))
    return demos


def _result(job: Job, status: str, state: dict[str, Any], ledger: Ledger, prompt_cls: Any,
            note: str = "") -> PeerResult:
    from importlib.metadata import version

    from promptolution.utils.prompt import sort_prompts_by_scores

    optimizer, task = state.get("optimizer"), state.get("task")
    if optimizer is not None and optimizer.prompts and isinstance(optimizer.prompts[0], prompt_cls):
        best, score = _best(optimizer, task, sort_prompts_by_scores)
        n_scored = _cached_accuracy(task, best)[1]
    else:
        best, score, n_scored = prompt_cls(job.instruction), None, 0
    demos = _demos(best, _dedupe(job.train)) if best.few_shots else []
    bits = [f"promptolution {job.system.removeprefix('promptolution-')} with knobs {state.get('knobs')}, step guard "
            f"{job.options.get('step_guard', 'worst_case')}",
            ("answer read as the first label mentioned" if job.labels else "free-form answer, RewardTask with")
            + " answer_matches; no logprob scoring; "
            + ("the proposer serves as meta-LLM" if job.separate_proposer else
               "the task model also serves as meta-LLM"),
            f"stopped: {state.get('stop_reason', 'n/a')}"]
    if demos:
        bits.append(f"{len(demos)} CAPO few-shot examples returned as demos (targets are the texts CAPO shows)")
    if note:
        bits.append(note)
    return PeerResult(
        status, best.instruction, demos=demos, detail="; ".join(bits), version=version("promptolution"),
        internal_score=score,
        extra={"steps": len(state.get("steps", [])), "step_log": state.get("steps", []),
               "calls_counted": ledger.calls, "refused_seen": ledger.refused, "internal_score_n": n_scored,
               "meta_calls_counted": state["meta_ledger"].calls if state.get("meta_ledger") else None,
               "initial_prompts": state.get("initial"), "population": [
                   {"instruction": p.instruction, "few_shots": len(p.few_shots),
                    "dev_score": _cached_accuracy(task, p)[0]}
                   for p in (optimizer.prompts if optimizer is not None else [])
                   if isinstance(p, prompt_cls)][:20]})


def main() -> None:
    job = main_job()
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # nothing here imports LiteLLM; kept for safety
    os.environ.setdefault("OPENAI_API_KEY", "local")
    logging.basicConfig(filename=out / "promptolution-verbose.log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)  # library warnings (scipy's t-test on tiny blocks, ...) go to the log file
    ledger = Ledger(job.budget_calls)
    # the meta LLM's own account with a separate proposer (its cap is the proxy's runaway guard); else it shares
    meta_ledger = Ledger(job.proposer_budget_calls or 10**9) if job.separate_proposer else None
    state: dict[str, Any] = {"meta_ledger": meta_ledger}
    started = time.monotonic()
    method = SYSTEMS.get(job.system)
    try:
        if method is None:
            raise ValueError(f"unknown system {job.system!r}; expected one of {sorted(SYSTEMS)}")
        result = run(job, method, ledger, state, meta_ledger)
    except Exception as exc:  # the contract: always write a result, with the best prompt the run has
        log.exception("run ended by an exception")
        refused = is_budget_refusal(exc) or ledger.refused > 0 or bool(meta_ledger and meta_ledger.refused)
        if refused and not str(state.get("stop_reason", "")).startswith("cut off"):
            state["stop_reason"] = "cut off by the proxy before the first step"
        if not refused:
            traceback.print_exc(file=sys.stderr)
        note = (f"cut off by the proxy ({type(exc).__name__}); reporting the best prompt scored before it" if refused
                else f"{type(exc).__name__}: {exc}"[:1500])
        try:
            from promptolution.utils.prompt import Prompt

            result = _result(job, "cut_off" if refused else "failed", state, ledger, Prompt, note=note)
        except Exception:  # even the summary failed: the bare minimum the contract asks for
            result = PeerResult("cut_off" if refused else "failed", job.instruction, detail=note)
    result.extra["wall_s"] = round(time.monotonic() - started, 1)
    result.write(job.result_path)
    (out / "summary.json").write_text(json.dumps(result.extra, indent=1, default=str), encoding="utf-8")
    _progress(job.system, f"{result.status}: internal score {result.internal_score}, {ledger.calls} calls "
              f"counted, {result.extra['wall_s']} s -> {job.result_path}")


if __name__ == "__main__":
    main()
