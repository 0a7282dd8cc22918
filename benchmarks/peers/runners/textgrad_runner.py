"""Run TextGrad's prompt-optimization recipe as a peer system (`job.system == "textgrad"`).

The recipe is the one in TextGrad's `evaluation/prompt_optimization.py` and its prompt-optimization tutorial: the
system prompt is a `tg.Variable(requires_grad=True)` with the recipe's role description, the task model is
`tg.BlackboxLLM(engine, system_prompt)`, each training example's loss is a string-based function
(`StringBasedFunction`, as the recipe uses for its string-checkable tasks) that says whether the answer is right,
the minibatch losses are joined with `tg.sum`, `backward()` asks the backward engine for textual gradients,
`tg.TGD` rewrites the prompt, and after every step the prompt is validated on dev and reverted when it scores lower
than the previous one (`run_validation_revert`). Recipe defaults: batch size 3, at most 3 epochs of 4 steps.

Choices made here, and why:
- Engine: `ChatExternalClient` (textgrad 0.1.8's engine for any OpenAI-compatible client) with an `openai.OpenAI`
  client on `job.base_url`. `get_engine("experimental:...")` goes through LiteLLM, whose call drops `max_tokens`
  and `temperature`, and `OpenAICompatibleEngine` overwrites the client it is given; this one honours both. The
  task engine is the forward model; the proposer engine (the job's proposer account) is the backward engine and
  the TGD engine. Both are the same model unless the harness runs a separate proposer (`job.separate_proposer`,
  e.g. Qwen2.5-Coder-1.5B as backward/TGD engine for the 0.5B task model, the recipe's strong-feedback setup).
- Every call is capped at `job.max_tokens` (textgrad asks for 2000). Temperature stays at the recipe's 0.
- Retries: textgrad wraps `generate` in 5 tenacity retries on any error; here it retries only transient errors
  (connection, timeout, 5xx), so the proxy's 403 `budget_exhausted` (and any other 4xx) is never retried.
- Loss: per-example accuracy is `answer_matches(output, target, job.labels)`, the metric every peer optimizes
  against. The string-based loss costs no calls; an LLM-judge loss (the recipe's other option) would spend calls
  and ask a 135M model to judge.
- What the task model sees: the system prompt is the trained variable; the user turn is the example as the harness
  renders it after the instruction: the task's fixed output-format line, then `Input: ...` / `Answer:`. So the
  format line, which the harness appends at test time, is present during training but is never part of the
  optimized text. The result's `instruction` is the optimized system prompt; there are no demos.
- Budget (TextGrad counts nothing itself, so this runner counts the HTTP calls its engines make). Per step with a
  batch of b examples: b forward calls, 2b backward calls (string loss -> response, response -> system prompt; the
  `tg.sum` backward is free), 1 TGD call, then |val| validation calls for the new prompt. Paid from the budget:
  3b + 1 + |val| when one model plays every role, b + |val| (the task engine's calls) with a separate proposer. The
  seed prompt is validated first (|val| calls). A step runs only if the calls left cover its worst case, so a run
  never needs more than `budget_calls`; the engine's in-run cache (identical system prompt + input) makes some
  calls free. With budget 60, 10 dev and b = 3: 10 + 2 x 20 = 50 calls, two steps; with 300 task calls, 30 dev
  and a separate proposer: 30 + 8 x 33 = 294, eight steps (the recipe's 3 epochs x 4 steps cap at 12). If even
  one step does not fit with the whole dev split, validation uses the first (budget - step) // 2 dev examples.
  `job.options["step_guard"] = "optimistic"` runs a step when its calls without validation are left (its
  validation may then be cut off by the proxy: the candidate is dropped, the last validated prompt is reported,
  status "cut_off").
- When the 135M model's TGD reply has no `<IMPROVED_VARIABLE>` tag, textgrad raises IndexError (the recipe would
  crash); here that step leaves the prompt unchanged and the run goes on (counted in `extra`).
- Caching and logs: textgrad's engine disk cache (platformdirs user cache, via XDG_CACHE_HOME) and its JSONL log
  (TEXTGRAD_LOG_DIR, else ./logs) are both put under `job.out_dir` before textgrad is imported, so nothing carries
  over between runs. One progress line per stage goes to stdout (the harness keeps it in runner.log); this
  runner's own log is `textgrad-verbose.log`, and `summary.json` holds the validation history and prompts.

What this peer cannot use here: label log-probabilities (it only sees generated text), and, when no separate
proposer runs, a strong backward/TGD model (the recipe assumes GPT-4o gives the feedback; then the task model
gives it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.peers.job import Job, PeerResult, answer_matches, is_budget_refusal, main_job

# The recipe's knobs (evaluation/prompt_optimization.py): batch size 3, 3 epochs, a step budget of 4 per epoch.
BATCH_SIZE = 3
MAX_EPOCHS = 3
STEPS_PER_EPOCH = 4
# The recipe's role description for the optimized system prompt, verbatim.
ROLE = ("structured system prompt to a somewhat capable language model that specifies the behavior and strategies "
        "for the QA task")
FN_PURPOSE = "The runtime of string-based function that checks if the prediction is correct."  # the recipe's
EVAL_THREADS = 4  # the recipe validates with a thread pool; 4 keeps the shared CPU server's queue short

log = logging.getLogger("textgrad_runner")


def _progress(message: str) -> None:
    print(f"[textgrad] {message}", flush=True)
    log.info(message)


def _prepare_environment(out: Path) -> None:
    """Confine textgrad's disk cache and logs to the run's directory; keep LiteLLM offline. Before any import."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["XDG_CACHE_HOME"] = str(out / "cache")  # platformdirs.user_cache_dir -> the engine's diskcache
    os.environ["TEXTGRAD_LOG_DIR"] = str(out / "textgrad_logs") + os.sep
    os.environ.setdefault("OPENAI_API_KEY", "local")
    logging.basicConfig(filename=out / "textgrad-verbose.log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)  # library warnings go to the log file, not to the harness's runner.log


class CallCounter:
    """Counts the calls the proxy charges one engine (answered requests) and its budget refusals."""

    def __init__(self) -> None:
        self.calls = 0
        self.refused = 0
        self._lock = threading.Lock()

    def wrap(self, client: Any) -> Any:
        """An object that looks like `client` to textgrad (`.api_key`, `.chat.completions.create`) and counts."""
        inner = client.chat.completions.create

        def create(**kwargs: Any) -> Any:
            try:
                reply = inner(**kwargs)
            except Exception as exc:
                if is_budget_refusal(exc):
                    with self._lock:
                        self.refused += 1
                raise
            with self._lock:
                self.calls += 1
            return reply

        return SimpleNamespace(api_key=client.api_key, chat=SimpleNamespace(completions=SimpleNamespace(create=create)))


def _make_engine(job: Job, counter: CallCounter, *, proposer: bool = False) -> Any:
    import openai
    from tenacity import retry_if_exception_type, stop_after_attempt
    from textgrad.engine.local_model_openai_api import ChatExternalClient
    from textgrad.engine.openai import ChatOpenAI

    transient = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError)
    # textgrad's own retry policy (tenacity around `generate`), narrowed to transient errors: never a 403.
    generate = ChatOpenAI.generate.retry_with(retry=retry_if_exception_type(transient), stop=stop_after_attempt(3))

    class ProxyEngine(ChatExternalClient):
        def generate(self, content: Any, system_prompt: str | None = None, **kwargs: Any) -> Any:
            return generate(self, content, system_prompt=system_prompt, **kwargs)

        def _generate_from_single_prompt(self, prompt: str, system_prompt: str | None = None, temperature: float = 0,
                                         max_tokens: int | None = None, top_p: float = 0.99) -> str:
            return super()._generate_from_single_prompt(prompt, system_prompt=system_prompt, temperature=temperature,
                                                        max_tokens=job.max_tokens, top_p=top_p)

    client = openai.OpenAI(base_url=job.proposer_url if proposer else job.base_url,
                           api_key=os.environ["OPENAI_API_KEY"], timeout=900.0, max_retries=2)
    return ProxyEngine(client=counter.wrap(client), model_string=job.proposer if proposer else job.model)


def render_query(job: Job, text: str) -> str:
    """The user turn: the example as the harness renders it after the instruction (format line, input, cue)."""
    parts = [job.output_format.strip()] if job.output_format.strip() else []
    parts.append(f"Input: {text}\nAnswer:")
    return "\n\n".join(parts)


def budgeted_step_cost(job: Job, batch_size: int) -> int:
    """Budget calls of one step before its validation: the forward calls, plus the backward and TGD calls when the
    task model plays those roles too (no separate proposer)."""
    return batch_size if job.separate_proposer else 3 * batch_size + 1


def run(job: Job, out: Path, counter: CallCounter, state: dict[str, Any],
        proposer_counter: CallCounter | None = None) -> PeerResult:
    import numpy as np
    import textgrad as tg
    from textgrad.autograd.string_based_ops import StringBasedFunction
    from textgrad.tasks import DataLoader

    random.seed(job.seed)
    np.random.seed(job.seed)  # tg.tasks.DataLoader shuffles with np.random

    engine = _make_engine(job, counter)
    # With a separate proposer, its calls are counted apart (the budget is the task engine's calls); else one
    # counter holds both, as the proxy's one account does.
    proposer_engine = _make_engine(job, proposer_counter or counter, proposer=True) if job.separate_proposer \
        else engine
    state["cache_path"] = engine.cache_path
    tg.set_backward_engine(proposer_engine, override=True)

    batch_size = int(job.options.get("batch_size", BATCH_SIZE))
    max_epochs = int(job.options.get("max_epochs", MAX_EPOCHS))
    steps_per_epoch = int(job.options.get("steps_per_epoch", STEPS_PER_EPOCH))
    guard = str(job.options.get("step_guard", "worst_case"))
    if guard not in ("worst_case", "optimistic"):
        raise ValueError(f"step_guard must be 'worst_case' or 'optimistic', not {guard!r}")
    train = [(render_query(job, p.input), p.target) for p in job.train]
    val = [(render_query(job, p.input), p.target) for p in job.dev]
    step_cost = budgeted_step_cost(job, batch_size)
    if job.budget_calls < 2 * len(val) + step_cost:
        val = val[: max(1, (job.budget_calls - step_cost) // 2)]
    state["val_size"] = len(val)

    def check(prediction: Any, ground_truth_answer: Any) -> int:
        return int(answer_matches(str(prediction.value), str(ground_truth_answer.value), job.labels))

    eval_fn = StringBasedFunction(check, function_purpose=FN_PURPOSE)
    system_prompt = tg.Variable(job.instruction, requires_grad=True, role_description=ROLE)
    model = tg.BlackboxLLM(engine, system_prompt)
    optimizer = tg.TGD(engine=proposer_engine, parameters=[system_prompt])
    state["system_prompt"] = system_prompt

    def eval_sample(item: tuple[str, str]) -> int:
        x = tg.Variable(item[0], requires_grad=False, role_description="query to the language model")
        y = tg.Variable(item[1], requires_grad=False, role_description="correct answer for the query")
        return int(eval_fn(inputs=dict(prediction=model(x), ground_truth_answer=y)).value)

    def eval_dataset(items: list[tuple[str, str]]) -> float:
        with ThreadPoolExecutor(max_workers=EVAL_THREADS) as pool:
            futures = [pool.submit(eval_sample, item) for item in items]
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise next((e for e in errors if is_budget_refusal(e)), errors[0])
            return float(np.mean([f.result() for f in futures]))

    results: dict[str, list[Any]] = {"validation_acc": [], "prompt": [], "event": []}
    state["results"] = results
    started = counter.calls
    results["validation_acc"].append(eval_dataset(val))
    results["prompt"].append(system_prompt.get_value())
    results["event"].append("seed")
    _progress(f"seed prompt: val acc {results['validation_acc'][-1]:.3f} on {len(val)} dev "
              f"({counter.calls - started} calls)")

    loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    unparseable = 0
    stop_reason = "recipe finished (epochs x steps)"
    for epoch in range(max_epochs):
        for step, (batch_x, batch_y) in enumerate(loader):
            need = budgeted_step_cost(job, len(batch_x)) + (len(val) if guard == "worst_case" else 0)
            if job.budget_calls - counter.calls < need:
                stop_reason = (f"budget: {job.budget_calls - counter.calls} calls left < {need} for a step "
                               f"(batch {len(batch_x)}{', with' if guard == 'worst_case' else ', without'} "
                               f"its validation)")
                break
            before = counter.calls
            optimizer.zero_grad()
            losses = []
            for x_text, y_text in zip(batch_x, batch_y, strict=True):
                x = tg.Variable(x_text, requires_grad=False, role_description="query to the language model")
                y = tg.Variable(y_text, requires_grad=False, role_description="correct answer for the query")
                response = model(x)
                losses.append(eval_fn(inputs=dict(prediction=response, ground_truth_answer=y)))
            batch_acc = float(np.mean([int(loss.value) for loss in losses]))
            total_loss = tg.sum(losses)
            total_loss.backward()
            state["steps"] = state.get("steps", 0) + 1
            try:
                optimizer.step()
            except IndexError:  # the TGD reply had no <IMPROVED_VARIABLE> tag: the recipe would crash here
                unparseable += 1
                results["validation_acc"].append(results["validation_acc"][-1])
                results["prompt"].append(system_prompt.get_value())
                results["event"].append("unparseable")
                _progress(f"epoch {epoch} step {step}: batch acc {batch_acc:.2f}, TGD reply had no tags; prompt "
                          f"kept ({counter.calls - before} calls, {counter.calls} total)")
                if step == steps_per_epoch - 1:
                    break
                continue
            # run_validation_revert: keep the new prompt unless it scores lower than the previous one
            previous_acc, previous_prompt = results["validation_acc"][-1], results["prompt"][-1]
            candidate = system_prompt.get_value()
            val_acc = eval_dataset(val)
            if val_acc < previous_acc:
                system_prompt.set_value(previous_prompt)
                event = "rejected"
                val_acc = previous_acc
            else:
                event = "accepted"
            results["validation_acc"].append(val_acc)
            results["prompt"].append(system_prompt.get_value())
            results["event"].append(event)
            log.info("candidate (%s): %r", event, candidate)
            _progress(f"epoch {epoch} step {step}: batch acc {batch_acc:.2f}, new prompt {event} "
                      f"(val {val_acc:.3f}; {counter.calls - before} calls, {counter.calls} total)")
            if step == steps_per_epoch - 1:
                break
        else:
            continue
        if stop_reason.startswith("budget"):
            break
    return _result(job, "ok", state, counter, unparseable=unparseable, stop_reason=stop_reason)


def _result(job: Job, status: str, state: dict[str, Any], counter: CallCounter, **facts: Any) -> PeerResult:
    """The best validated prompt the run has; its last validation score is the internal score."""
    from importlib.metadata import version

    results = state.get("results") or {}
    prompts, accs = results.get("prompt") or [], results.get("validation_acc") or []
    instruction = prompts[-1] if prompts else job.instruction  # after revert, the last entry is the best validated
    events = results.get("event") or []
    detail_bits = [f"TextGrad recipe: batch {job.options.get('batch_size', BATCH_SIZE)}, string-based loss "
                   f"(answer_matches), validation on {state.get('val_size', len(job.dev))} dev examples with revert; "
                   f"{'the proposer' if job.separate_proposer else 'the task model'} as backward and TGD engine; "
                   f"generated text only, no logprob scoring; step guard "
                   f"{job.options.get('step_guard', 'worst_case')}"]
    if facts.get("stop_reason"):
        detail_bits.append(f"stopped: {facts['stop_reason']}")
    if facts.get("unparseable"):
        detail_bits.append(f"{facts['unparseable']} TGD replies without <IMPROVED_VARIABLE> tags left the prompt as is")
    if facts.get("note"):
        detail_bits.append(str(facts["note"]))
    return PeerResult(
        status, instruction, demos=[], detail="; ".join(detail_bits), version=version("textgrad"),
        internal_score=accs[-1] if accs else None,
        extra={"steps": state.get("steps", 0), "calls_counted": counter.calls, "refused_seen": counter.refused,
               "proposer_calls_counted": state["proposer_counter"].calls if state.get("proposer_counter") else None,
               "accepted": events.count("accepted"), "rejected": events.count("rejected"),
               "unparseable": events.count("unparseable"), "val_size": state.get("val_size"),
               "validation_history": accs, "events": events, "cache_path": state.get("cache_path")})


def main() -> None:
    job = main_job()
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _prepare_environment(out)
    counter = CallCounter()
    proposer_counter = CallCounter() if job.separate_proposer else None
    state: dict[str, Any] = {}
    started = time.monotonic()
    try:
        state["proposer_counter"] = proposer_counter
        result = run(job, out, counter, state, proposer_counter)
    except Exception as exc:  # the contract: always write a result, with the best prompt the run validated
        log.exception("run ended by an exception")
        refused = is_budget_refusal(exc) or counter.refused > 0 or bool(proposer_counter and proposer_counter.refused)
        if not refused:
            traceback.print_exc(file=sys.stderr)
        if state.get("system_prompt") is not None and state.get("results", {}).get("prompt"):
            state["system_prompt"].set_value(state["results"]["prompt"][-1])
        note = (f"cut off by the proxy ({type(exc).__name__}); reporting the last validated prompt" if refused
                else f"{type(exc).__name__}: {exc}"[:1500])
        try:
            result = _result(job, "cut_off" if refused else "failed", state, counter, note=note)
        except Exception:  # even the summary failed: the bare minimum the contract asks for
            result = PeerResult("cut_off" if refused else "failed", job.instruction, detail=note)
    result.extra["wall_s"] = round(time.monotonic() - started, 1)
    result.write(job.result_path)
    (out / "summary.json").write_text(json.dumps(state.get("results", {}), indent=1), encoding="utf-8")
    _progress(f"{result.status}: internal score {result.internal_score}, {counter.calls} calls counted, "
              f"{result.extra['wall_s']} s -> {job.result_path}")


if __name__ == "__main__":
    main()
