"""What a tracker logs, as plain data: params from a run's config, metrics from a step or a result, prompt text.

Kept apart from any tracking client so that the choice of what to log (and how it is masked and cut to size)
is tested without one, and so that a second tracker (say Weights & Biases) logs the same things.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from prompthone.tracking.redact import mask_secrets

if TYPE_CHECKING:
    from prompthone.prompts.prompt import Prompt
    from prompthone.run.results import OptimizationResult, StepRecord

#: Config keys that are not params: versions become tags, the rest is bookkeeping for `resume`.
NOT_PARAMS = ("versions",)
#: Keys MLflow accepts: alphanumerics, underscores, dashes, periods, spaces, colons and slashes.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")
TRUNCATED = "…"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys (`options.steps`, `budget.calls`); other values as they are."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def param_value(value: Any, limit: int) -> str:
    """A param value as a tracker stores it: strings as they are, lists as JSON, scalars by `str`; masked, and cut
    to `limit` characters (ending in "…") so that a long instruction never makes the whole batch fail."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple):
        text = json.dumps(list(value), ensure_ascii=False, default=str)
    else:
        text = str(value)
    return cut(mask_secrets(text), limit)


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters ending in "…" when it is longer."""
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def run_params(config: dict[str, Any], *, value_limit: int, key_limit: int = 250) -> dict[str, str]:
    """Every field of a run's config (method, task, seed, budget, scoring, models, each method option) as params."""
    params: dict[str, str] = {}
    for key, value in flatten({k: v for k, v in config.items() if k not in NOT_PARAMS}).items():
        safe_key = _KEY_UNSAFE.sub("_", mask_secrets(key))[:key_limit]
        params[safe_key] = param_value(value, value_limit)
    return params


def step_metrics(record: StepRecord) -> dict[str, float]:
    """The metrics of one step: best score so far (when there is one), spend counters, frontier size, time."""
    metrics: dict[str, float] = {}
    if record.best_score is not None and math.isfinite(record.best_score):
        metrics["best_score"] = float(record.best_score)
    for key in ("calls", "new_calls", "cache_hits", "tokens", "usd"):
        value = record.spend.get(key)
        if isinstance(value, int | float):
            metrics[key] = float(value)
    metrics["frontier_size"] = float(len(record.frontier))
    metrics["elapsed_s"] = float(record.elapsed_s)
    return metrics


def final_metrics(result: OptimizationResult) -> dict[str, float]:
    """The outcome's scores (NaN ones left out: a task without a test split, an interrupted run) and final calls."""
    metrics = {key: float(getattr(result, key))
               for key in ("best_dev_score", "seed_dev_score", "test_score", "seed_test_score")}
    metrics = {key: value for key, value in metrics.items() if math.isfinite(value)}
    final_calls = result.final_spend.get("calls")
    if isinstance(final_calls, int | float):
        metrics["final_calls"] = float(final_calls)
    return metrics


def prompt_text(prompt: Prompt) -> str:
    """A prompt for people to read: the system message, the instruction, the demos and the output format."""
    parts = [f"# System\n{prompt.system or '(none)'}", f"# Instruction\n{prompt.instruction}"]
    if prompt.instruction_position != "before":
        parts[-1] += f"\n(placed {prompt.instruction_position} the input)"
    if prompt.demos:
        demos = "\n\n".join(f"Input: {d.input}\nAnswer: {d.target}" for d in prompt.demos)
        parts.append(f"# Demos ({len(prompt.demos)})\n{demos}")
    else:
        parts.append("# Demos\n(none)")
    parts.append(f"# Output format\n{prompt.output_format or '(none)'}")
    if prompt.answer_prefix:
        parts.append(f"# Answer prefix (the reply starts with it)\n{prompt.answer_prefix}")
    if prompt.reasoning_tokens:
        parts.append(f"# Reasoning\nup to {prompt.reasoning_tokens} tokens, then: {prompt.extractor}")
    return "\n\n".join(parts) + "\n"


def to_json(data: Any) -> str:
    """JSON as the run directory writes it (NaN kept as NaN, unknown types by `str`)."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
