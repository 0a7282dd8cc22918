"""The model regimes the peer benchmark runs in: which embedded model is the task model, which one proposes.

Why regimes: with SmolLM2-135M as task model *and* optimizer model (the `smollm` regime), no system can write a
usable prompt, so that table says little about the optimizers. The `qwen` regime is the one they can run:
Qwen2.5-Coder-0.5B-Instruct as task model and Qwen2.5-Coder-1.5B-Instruct as every system's proposer (DSPy's
`prompt_model` and GEPA's `reflection_lm`, TextGrad's backward and TGD engine, promptolution's meta LLM,
prompthone's meta model), each on its own `llama_cpp.server` behind its own counting proxy. The budget is then
task-model calls, the same for every system; proposer calls are counted and reported apart, capped per run only
as a guard against a runaway loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prompthone.models.local_server import DEFAULT_ALIAS, serve_gguf

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
SMOLLM_TASKS = ("gen:sentiment_templates", "gen:boolean_expressions", "bbh:navigate", "bbh:sports_understanding")
#: the tasks the quality benchmark's precheck included for Qwen2.5-Coder-0.5B that load offline and are short
#: (gen:sentiment_templates is at ceiling for this model; bbc:topics has long inputs; evals:heart_disease is slow)
QWEN_TASKS = ("gen:boolean_expressions", "examples/reviews.jsonl")


@dataclass(frozen=True)
class Split:
    """One split for every seed: the systems' final prompts are then scored on the same test examples, and the
    tables can pair them example by example (as the quality benchmark does)."""

    data_seed: int
    limit: int  # examples drawn before the split: train keeps limit - dev - test
    dev: int
    test: int


@dataclass(frozen=True)
class Regime:
    """A task model, an optional separate proposer, and the full run's defaults in that regime."""

    name: str
    task_model: str  # an embedded model spec: local, qwen-0.5b, qwen-1.5b
    proposer_model: str | None  # an embedded spec of a separate proposer; None: the task model proposes
    tasks: tuple[str, ...]
    levels: tuple[float, ...]  # fractions of the budget, each a separate run
    runner_timeout_s: float  # wall-clock limit per run in full mode
    raw: Path | None  # where a full run's raw results are written (committed beside RESULTS.md)
    seeds: tuple[int, ...] = (0, 1, 2)  # a full run's seeds
    split: Split | None = None  # a full run's split (None: each seed its own 40/20/40 split of 150 examples)


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("smollm", "local", None, SMOLLM_TASKS, (0.33, 0.67, 1.0), 1800.0, None),
    # One budget level (the full 300 task calls, as in the quality benchmark): with the 1.5B proposer writing
    # about 10 tokens/s on 2 cores a run takes minutes to tens of minutes, so a second level would add hours.
    # 5 seeds on one split: 60 train (demos and bootstrapping), 30 dev (what the search scores; the budget is 300
    # task calls), 200 test (the quality benchmark's test size; examples/reviews.jsonl has 320 examples)
    Regime("qwen", "qwen-0.5b", "qwen-1.5b", QWEN_TASKS, (1.0,), 3 * 3600.0, RESULTS_DIR / "peers-qwen.jsonl",
           seeds=(0, 1, 2, 3, 4), split=Split(data_seed=0, limit=290, dev=30, test=200)),
)}

#: the context of the proposer's server: TextGrad's backward prompts and DSPy's grounded proposer carry several
#: examples and 256-token replies, beyond the task model's 4096
PROPOSER_CONTEXT = 8192


def model_name(spec: str) -> str:
    """The name a served embedded model goes by (its alias at the server, in requests and in the tables)."""
    if spec == "local":
        return DEFAULT_ALIAS
    from prompthone.models.embedded import embedded_model

    return embedded_model(spec).name.lower()


def display_name(spec: str) -> str:
    from prompthone.models.embedded import embedded_model

    return embedded_model(spec).name


@contextlib.contextmanager
def serve_embedded(spec: str, log: Path, n_ctx: int = 4096) -> Iterator[tuple[str, str]]:
    """Serve an embedded model on `llama_cpp.server` for this run; yields (base URL, model name).

    The SmolLM2 default is served exactly as before (the server's own thread default); the Qwen models get every
    core for generation, since the task model and the proposer take turns rather than run at once.
    """
    if spec == "local":
        with serve_gguf(log, alias=DEFAULT_ALIAS, n_ctx=n_ctx) as url:
            yield url, DEFAULT_ALIAS
        return
    from prompthone.models.embedded import embedded_model_path

    name = model_name(spec)
    with serve_gguf(log, embedded_model_path(spec), alias=name, n_ctx=n_ctx, n_threads=os.cpu_count()) as url:
        yield url, name
