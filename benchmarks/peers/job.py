"""The contract between the peer harness and one system's runner: a job file in, a result file out.

Why a file contract: each peer (DSPy, TextGrad, promptolution) lives in its own virtual environment with its own
dependencies, so its runner is a separate process that cannot import prompthone. This module is standard library
only; runners import it with the repository root on PYTHONPATH. The runner never sees the test split.

A runner is invoked as `<venv>/bin/python benchmarks/peers/runners/<name>.py <job.json>`. It must:
- send every task-model call to `job.base_url` (the counting proxy; model name `job.model`, any API key works
  locally: the key is in $OPENAI_API_KEY), with at most `job.max_tokens` completion tokens per call;
- send every proposer call (the optimizer's own model: DSPy's prompt/reflection model, TextGrad's backward and TGD
  engine, promptolution's meta LLM, prompthone's meta model) to `job.proposer_url` with model `job.proposer` (the
  same as the task model's unless the harness runs a separate proposer: `job.separate_proposer`);
- size the peer's own budget knobs to fit `job.budget_calls` calls: with a separate proposer these are task-model
  calls only (the proposer's calls are counted on their own account, capped at `job.proposer_budget_calls` as a
  guard against runaways), else task and proposer calls together; the proxy refuses calls beyond either cap with
  HTTP 403 (`budget_exhausted`), and the runner then reports what it has;
- write `PeerResult` to `job.result_path` (also on failure: status "failed" and the error), exit 0 unless it could
  not even write the result.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUDGET_EXHAUSTED = "budget_exhausted"  # the proxy's error type when a run has spent its calls
STATUSES = ("ok", "cut_off", "failed")


@dataclass(frozen=True)
class Pair:
    """One example as the runner sees it: an input text and the expected answer text."""

    input: str
    target: str


@dataclass
class Job:
    """One system's run on one task and seed."""

    system: str  # e.g. "dspy-mipro", "textgrad", "promptolution-capo"
    seed: int
    base_url: str  # OpenAI-compatible base URL ending in /v1 (the counting proxy)
    model: str  # model name to send in requests
    budget_calls: int  # the cap the proxy enforces: task-model calls (all calls when no separate proposer)
    max_tokens: int  # completion-token cap per call (the proxy clamps larger requests to it)
    task: str  # the task's name, for logs
    instruction: str  # the seed instruction
    output_format: str  # the task's fixed output-format line ("" if none); prompthone scores with it
    labels: list[str] | None  # the label set of a classification task, None for free-form answers
    train: list[Pair]
    dev: list[Pair]
    out_dir: str  # the runner's own directory: logs, caches, the result file
    metric: str = "label_accuracy"  # prompthone's metric name for the task (peers use `answer_matches`)
    options: dict[str, Any] = field(default_factory=dict)  # system-specific knobs from the harness
    #: the proposer's own proxy account (base URL and model); None: the task model proposes too, on `base_url`
    proposer_base_url: str | None = None
    proposer_model: str | None = None
    proposer_budget_calls: int | None = None  # the cap on the proposer's account (a runaway guard)

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / "result.json"

    @property
    def separate_proposer(self) -> bool:
        """Whether proposer calls go to their own account (then `budget_calls` counts task-model calls only)."""
        return self.proposer_base_url is not None

    @property
    def proposer_url(self) -> str:
        return self.proposer_base_url or self.base_url

    @property
    def proposer(self) -> str:
        return self.proposer_model or self.model

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Job:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["train"] = [Pair(**pair) for pair in raw["train"]]
        raw["dev"] = [Pair(**pair) for pair in raw["dev"]]
        return cls(**raw)


@dataclass
class PeerResult:
    """What a runner found: the final prompt as an instruction plus demos, which prompthone then scores on test.

    `instruction` replaces the seed instruction; the harness renders it with the task's output-format line and the
    demos exactly as it renders every other system's prompt, so all final prompts are scored the same way.
    """

    status: str  # "ok", "cut_off" (the proxy refused calls; this is the best the run had), "failed"
    instruction: str
    demos: list[Pair] = field(default_factory=list)
    detail: str = ""  # why cut off or failed; notes on what the peer could not use
    version: str = ""  # the peer package's version
    internal_score: float | None = None  # the peer's own score of its final prompt on dev, if it reports one
    extra: dict[str, Any] = field(default_factory=dict)  # peer-specific facts worth keeping (trials, candidates)
    #: prompthone's systems only: the found prompt's label prior (`Calibration.to_dict()`), part of the prompt as
    #: `auto` finds it; the harness applies it when it scores with label log-probabilities, while text scoring reads
    #: the generated answer, which no calibration changes
    calibration: dict[str, Any] | None = None

    def write(self, path: Path) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> PeerResult:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["demos"] = [Pair(**pair) for pair in raw.get("demos", [])]
        return cls(**raw)


def is_budget_refusal(error: BaseException) -> bool:
    """Whether an exception (from any client library, however wrapped) came from the proxy's budget refusal."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if BUDGET_EXHAUSTED in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def answer_matches(output: str, target: str, labels: list[str] | None) -> bool:
    """The metric every peer optimizes against, so that no peer gets a kinder one: the answer a generation gives.

    With a label set: the first label the output mentions (whole word, case-insensitive) must be the target. Free
    form: the output, stripped of case, surrounding punctuation and an "Answer:" prefix, must equal the target or
    start with it followed by a non-word character. prompthone itself scores the final prompts by label
    log-probabilities (or the same parsing, for free-form tasks); peers cannot, they only see generated text.
    """
    text = output.strip().lower()
    if labels:
        pattern = "|".join(re.escape(label.lower()) for label in sorted(labels, key=len, reverse=True))
        found = re.search(rf"(?<![\w])({pattern})(?![\w])", text)
        return found is not None and found.group(1) == target.strip().lower()
    text = re.sub(r"^(final answer|answer)\s*[:\-]\s*", "", text).strip(" \t\n.\"'`*")
    goal = target.strip().lower()
    return text == goal or re.match(rf"{re.escape(goal)}(?![\w])", text) is not None


def main_job() -> Job:
    """The job named on a runner's command line."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} <job.json>")
    return Job.read(Path(sys.argv[1]))
