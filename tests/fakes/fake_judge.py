"""Scripted judges (and a scripted answerer) for exact checks of pairwise judging and the augmentation evaluation.

They read the answers labelled A and B out of the judge prompt and prefer by rule (always position A, or the
answer holding a given text), so order swapping and win-rate arithmetic can be checked to the number. Never
evidence that judging works on a real model: the e2e tests run the embedded model for that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from prompthone.augment.judge import JUDGE_SYSTEM
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    Message,
    ScoringRequest,
)

_ANSWERS = re.compile(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]\n(.*?)\n\nWhich answer", re.S)


def shown_answers(messages: Sequence[Message]) -> tuple[str, str]:
    """(answer shown as A, answer shown as B) in a judge prompt."""
    match = _ANSWERS.search(messages[-1].content)
    assert match, "not a judge prompt"
    return match.group(1), match.group(2)


class ScriptedJudge:
    """Prefers position A (`favourite=None`), or whichever answer contains `favourite` in either position.

    Label scoring gives the preferred letter log P = -0.1 and the other -2.5; generation replies `reply_a` /
    `reply_b`. Prompts that are not judge prompts are answered "reply: <last user message>", and the PAS/rewrite
    augmenting prompts with `complement`, so the same double can also be the target and the complement model.
    """

    def __init__(self, *, favourite: str | None = None, score: bool = True, reply_a: str = "A",
                 reply_b: str = "Answer B is better.", complement: str = "Cover every step.") -> None:
        self.id = f"fake:judge:{favourite}"
        self.capabilities = Capabilities(generate=True, score=score)
        self.favourite, self.reply_a, self.reply_b, self.complement = favourite, reply_a, reply_b, complement
        self.requests: list[GenerationRequest | ScoringRequest] = []

    def _prefers_a(self, messages: Sequence[Message]) -> bool:
        a, b = shown_answers(messages)
        if self.favourite is None:
            return True
        return self.favourite in a or self.favourite not in b

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.requests.append(r)
            if r.messages[0].content == JUDGE_SYSTEM:
                text = self.reply_a if self._prefers_a(r.messages) else self.reply_b
            elif r.messages[0].role == "system":
                text = self.complement
            else:
                text = f"reply: {r.messages[-1].content}"
            yield i, Completion(text, prompt_tokens=20, completion_tokens=2)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.requests.append(r)
            best, other = -0.1, -2.5
            a, b = (best, other) if self._prefers_a(r.messages) else (other, best)
            yield i, ContinuationScores((a, b), prompt_tokens=20)

    def close(self) -> None:
        return None
