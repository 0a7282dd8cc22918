"""MIPROv2's grounded instruction proposal (Opsahl-Ong et al., 2024, §3: dataset summary, demos, tips).

1. Dataset summary (DSPy's `create_dataset_summary`): the meta model writes observations about a first batch of
   training examples, adds to them from each following batch (or replies COMPLETE, and the batch is skipped), and
   one last call condenses the observations into two or three sentences.
2. Proposal (DSPy's `GroundedProposer`, without the program-code description a one-prompt task does not have):
   instruction i is written from the summary, up to `demos_in_context` bootstrapped demos gathered from demo set i
   onwards (set 0 is the zero-shot set: no demos shown), the seed instruction, and a tip drawn at random from a
   fixed list. Replies are parsed like every other method's (<START>…<END>, else the first paragraph); a reply
   that quotes a training example, or repeats an instruction already proposed, is dropped.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.evaluation.metered import MeteredModel
from prompthone.optimizers.meta_calls import ask_meta
from prompthone.optimizers.mipro_demos import DemoSet, gather_bootstrapped
from prompthone.prompts.meta import INSTRUCTION_CHARS, QUOTE_RUN, fill, format_demos, load_meta_prompt, neutralize_tags
from prompthone.tasks.example import Example

#: DSPy's proposer tips (keys as in `dspy.propose.grounded_proposer.TIPS`), in our words. One is drawn per proposal.
TIPS: dict[str, str] = {
    "none": "",
    "creative": "Feel free to be creative in how you write it.",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make the instruction informative and descriptive.",
    "high_stakes": "Describe a high-stakes situation in which the task must be solved correctly.",
    "persona": 'Give the model a persona that fits the task (for example "You are a ...").',
}

_PREFIX = re.compile(r"^[*\s]*(?:[\w'\-]+\s+){0,4}[\w'\-]+:\s*")  # DSPy's strip_prefix: "Summary: ..." → "..."
_COMPLETE = re.compile(r"^\W*complete\b", re.IGNORECASE)
_OBSERVATIONS_CHARS = 1500  # what a small model's context holds comfortably next to a batch of examples


@dataclass(frozen=True)
class Proposal:
    """One instruction candidate and what it was grounded on (the seed instruction is index 0, tip 'none')."""

    instruction: str
    tip: str = "none"
    demo_set: int = 0


@dataclass(frozen=True)
class DatasetSummary:
    """The meta model's short description of the training data, with the observations it came from."""

    summary: str
    observations: tuple[str, ...]
    complete_batches: int


def clip(text: str, max_chars: int) -> str:
    """`text` cut at a word boundary to at most about `max_chars` characters (marked with ' …' when cut)."""
    text = text.strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;: ") + " …"
    return text


def plain_reply(text: str, max_chars: int) -> str:
    """A free-text reply as shown in a later meta-prompt: no lead-in label, no tags, at most `max_chars`."""
    return clip(_PREFIX.sub("", neutralize_tags(text).strip(), count=1).strip().strip("\"'`"), max_chars)


def show_examples(examples: Sequence[Example], max_chars: int = 500) -> str:
    """Training examples as the meta model sees them: tags defanged (example text cannot fake a reply), each
    field cut to `max_chars` so that a batch of long inputs still fits a small model's context."""
    return format_demos([Example(clip(neutralize_tags(e.input), max_chars), clip(neutralize_tags(e.target), max_chars))
                         for e in examples], output_label="Answer")


def _ask(model: MeteredModel, text: str, rng: random.Random, *, temperature: float, max_tokens: int) -> str:
    """The meta model's raw reply to `text` (observations and summaries are free text, not prompt items)."""
    return ask_meta(model, rng, [text], max_tokens=max_tokens, temperature=temperature, forbidden=())[0].text


def summarize_dataset(model: MeteredModel, train: Sequence[Example], rng: random.Random, *, batch_size: int,
                      max_batches: int, temperature: float, max_tokens: int) -> DatasetSummary:
    """Observations over up to `max_batches` batches of `batch_size` examples, then a 2-3 sentence summary.

    Costs one meta call per batch plus one; an empty summary when the meta model wrote no usable observation.
    """
    batches = [train[b:b + batch_size] for b in range(0, len(train), batch_size)][:max_batches]
    observations: list[str] = []
    complete = 0
    for i, batch in enumerate(batches):
        if i == 0 or not observations:
            text = fill(load_meta_prompt("mipro_observe"), examples=show_examples(batch))
        else:
            text = fill(load_meta_prompt("mipro_observe_more"), examples=show_examples(batch),
                        observations=plain_reply("\n".join(observations), _OBSERVATIONS_CHARS))
        reply = _ask(model, text, rng, temperature=temperature, max_tokens=max_tokens)
        if i > 0 and _COMPLETE.match(reply):
            complete += 1
            continue
        observed = plain_reply(reply, _OBSERVATIONS_CHARS)
        if observed:
            observations.append(observed)
    if not observations:
        return DatasetSummary("", (), complete)
    text = fill(load_meta_prompt("mipro_summarize"),
                observations=plain_reply("\n".join(observations), _OBSERVATIONS_CHARS))
    summary = plain_reply(_ask(model, text, rng, temperature=temperature, max_tokens=max_tokens), 600)
    return DatasetSummary(summary, tuple(observations), complete)


def propose_instructions(model: MeteredModel, rng: random.Random, *, seed_instruction: str, summary: str,
                         demo_sets: Sequence[DemoSet], n: int, forbidden: Sequence[str], temperature: float,
                         max_tokens: int, demos_in_context: int, tip_aware: bool, fewshot_aware: bool,
                         max_chars: int | None = INSTRUCTION_CHARS,
                         quote_run: int = QUOTE_RUN) -> tuple[list[Proposal], list[dict[str, Any]]]:
    """The seed instruction followed by up to `n - 1` grounded proposals, and a record of the dropped replies.

    The `n - 1` meta calls are sent as one batch; a failed or duplicate reply is not retried. `max_chars` and
    `quote_run` are the caller's output filter (`ask_meta`): MIPROv2 keeps proposals whole and drops only copies,
    `auto` keeps the short defaults.
    """
    template = load_meta_prompt("mipro_instruction")
    plans: list[tuple[str, int]] = []
    texts: list[str] = []
    seeds: list[int] = []
    for i in range(1, n):
        demo_set = i % len(demo_sets) if demo_sets else 0
        tip = rng.choice(list(TIPS)) if tip_aware else "none"
        demos = gather_bootstrapped(demo_sets, demo_set, demos_in_context) if fewshot_aware and demo_set else []
        texts.append(fill(template, summary=summary or "No description available.",
                          demos=show_examples(demos) or "No examples available.",
                          instruction=neutralize_tags(seed_instruction) or "(none)",
                          tip=f"{TIPS[tip]} " if TIPS[tip] else ""))
        plans.append((tip, demo_set))
        seeds.append(rng.randrange(2**31))
    proposals = [Proposal(seed_instruction)]
    seen = {seed_instruction.strip().casefold()}
    dropped: list[dict[str, Any]] = []
    replies = ask_meta(model, rng, texts, seeds=seeds, max_tokens=max_tokens, temperature=temperature,
                       forbidden=forbidden, max_chars=max_chars, quote_run=quote_run)
    for (tip, demo_set), reply in zip(plans, replies, strict=True):
        items = reply.items[:1]
        if not items or items[0].strip().casefold() in seen:
            reason = "duplicate" if items else "unusable or quotes a training example"
            dropped.append({"reply": reply.text[:300], "tip": tip, "demo_set": demo_set, "reason": reason})
            continue
        seen.add(items[0].strip().casefold())
        proposals.append(Proposal(items[0], tip, demo_set))
    return proposals, dropped
