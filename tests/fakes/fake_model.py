"""A deterministic in-process Model for exact unit checks of accounting (calls, cache, budget).

Never evidence that a feature works on a real model: the e2e tests run the embedded model for that.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence

from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)


class CountingModel:
    """Answers from a hash of the request and counts every call it receives."""

    def __init__(self, *, score: bool = True, max_concurrency: int = 1) -> None:
        self.id = "fake:counting"
        self.capabilities = Capabilities(generate=True, score=score, max_concurrency=max_concurrency)
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.calls += 1
            h = zlib.crc32(repr(r.payload()).encode())
            yield i, Completion(f"reply {h % 1000}", prompt_tokens=10, completion_tokens=3)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, r in enumerate(requests):
            self.calls += 1
            h = zlib.crc32(repr(r.payload()).encode())
            yield i, ContinuationScores(tuple(-float((h >> k) % 7) for k in range(len(r.continuations))),
                                        prompt_tokens=10)

    def close(self) -> None:
        return None


class ReplyingModel(CountingModel):
    """A meta model whose reply is `reply(text, n)`: `text` the last user message, `n` the replies so far (from 1).
    Every text asked is kept in `asked`, in order; scoring is `CountingModel`'s."""

    def __init__(self, reply: Callable[[str, int], str]) -> None:
        super().__init__()
        self.reply = reply
        self.asked: list[str] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.calls += 1
            text = r.messages[-1].content
            self.asked.append(text)
            yield i, Completion(self.reply(text, len(self.asked)), prompt_tokens=10, completion_tokens=5)
