"""Quality scoring of corpus prompts (PAS §3.1): cheap rules first, then an LLM judge's 1-5 rating, one threshold.

The rules drop what no judge needs to see (too short, too long, mostly symbols). The judge rates how clear,
self-contained and answerable a request is; with label scoring the rating is the expectation over the digits
1..5 (a graded score, where a parsed digit would be a coin flip between neighbours), otherwise the first digit of
a greedy reply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message, ScoringRequest

MIN_WORDS = 3
MAX_WORDS = 350
MIN_LETTER_FRACTION = 0.5
RATINGS = ("1", "2", "3", "4", "5")

QUALITY_SYSTEM = ("You rate user requests for an assistant. A good request is clear, self-contained and "
                  "answerable; a bad one is a fragment, unclear, or missing what it refers to.")
QUALITY_USER = ("Rate this request from 1 (unusable) to 5 (excellent). Reply with one digit.\n\n"
                "Request:\n{prompt}")


def rule_rejection(prompt: str) -> str | None:
    """Why a prompt fails the cheap rules ('too_short', 'too_long', 'not_text'), or None."""
    words = prompt.split()
    if len(words) < MIN_WORDS:
        return "too_short"
    if len(words) > MAX_WORDS:
        return "too_long"
    visible = [c for c in prompt if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if visible and letters / len(visible) < MIN_LETTER_FRACTION:
        return "not_text"
    return None


def _messages(prompt: str) -> tuple[Message, ...]:
    return (Message("system", QUALITY_SYSTEM), Message("user", QUALITY_USER.format(prompt=prompt.strip())))


def expected_rating(logprobs: Sequence[float]) -> float:
    """E[rating] under the normalised probabilities of the digits 1..5."""
    top = max(logprobs)
    weights = [math.exp(v - top) for v in logprobs]
    return sum((k + 1) * w for k, w in enumerate(weights)) / sum(weights)


def parse_rating(text: str) -> float | None:
    """The first digit 1-5 in a judge's reply, or None."""
    found = re.search(r"[1-5]", text)
    return float(found.group()) if found else None


def rate(model: MeteredModel, prompts: Sequence[str]) -> list[float | None]:
    """The judge's rating of each prompt (1.0-5.0), by label scoring when the backend can, else by generation."""
    if model.model.capabilities.score:
        scored = model.score([ScoringRequest(_messages(p), RATINGS) for p in prompts])
        return [round(expected_rating(s.logprobs), 4) for s in scored]
    replies = model.generate([GenerationRequest(_messages(p), max_tokens=4) for p in prompts])
    return [parse_rating(c.text) for c in replies]
