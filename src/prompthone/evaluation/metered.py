"""A model seen through the call cache and the budget meter: what optimizers and the evaluator call.

Cache hits never reach the backend. Requests are reserved on the meter in order (hits included, so a
seeded run takes the same path with a warm or a cold cache) and each result is cached the moment it arrives,
so a crash or a spent budget never loses a call that was paid for.

Misses go to the backend as one batch (as many as the call budget grants), so a server backend keeps all of its
slots busy until the last request instead of draining at the end of every chunk (at 64 in flight, chunks of 64
would idle it for a tail per chunk). Only a token budget, which is known to be spent only after the replies
arrive, sends chunks of the backend's concurrency, so the overshoot is at most one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from prompthone.errors import BackendError, BudgetExhausted
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import CallCache, NullCache
from prompthone.evaluation.prices import Price
from prompthone.models.base import (
    Completion,
    ContinuationScores,
    GenerationRequest,
    Model,
    ScoringRequest,
)

Req = TypeVar("Req", GenerationRequest, ScoringRequest)
Res = TypeVar("Res", Completion, ContinuationScores)


class MeteredModel:
    """Wraps a `Model` with a cache, a shared budget meter and a role name ('task' or 'meta')."""

    def __init__(self, model: Model, *, meter: BudgetMeter, cache: CallCache | None = None,
                 role: str = "task", on_result: Callable[[], None] | None = None, price: Price | None = None) -> None:
        self.model = model
        self.meter = meter
        self.cache = cache if cache is not None else NullCache()
        self.role = role
        self.on_result = on_result
        self.price = price  # what a call costs (None: counted in calls and tokens only)
        # With a real cache, a request repeated within one batch is sent once and its copies count as cache hits,
        # exactly as if they had been sent one after another. Without one (--no-cache), every copy is sent.
        self.dedupe = not isinstance(self.cache, NullCache)

    @property
    def id(self) -> str:
        return self.model.id

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Completions in request order. Raises BudgetExhausted once the budget cannot cover a miss."""
        return self._run(requests, self.model.generate, Completion)

    def score(self, requests: Sequence[ScoringRequest]) -> list[ContinuationScores]:
        """Continuation log-probabilities in request order (needs `capabilities.score`)."""
        return self._run(requests, self.model.score, ContinuationScores)

    def _run(self, requests: Sequence[Req], call: Callable[[Sequence[Req]], Iterator[tuple[int, Res]]],
             kind: type[Res]) -> list[Res]:
        results: list[Res | None] = [None] * len(requests)
        chunk = max(1, self.model.capabilities.max_concurrency) if self.meter.post_paid else len(requests)
        start = 0
        while start < len(requests):
            # Every request is reserved in order, cached or not, so the budget stops a run at the same
            # request with a warm or a cold cache. Raises BudgetExhausted before anything is sent.
            granted = self.meter.reserve(self.role, min(chunk, len(requests) - start))
            batch = range(start, start + granted)
            start += granted
            misses: list[int] = []
            copies: dict[Req, list[int]] = {}  # a repeat of a miss in this window: answered by its first copy
            for i in batch:
                if self.dedupe and requests[i] in copies:
                    copies[requests[i]].append(i)
                    continue
                hit = self.cache.get(self.model.id, requests[i])
                if isinstance(hit, kind):
                    results[i] = hit
                    self._account(hit, cached=True)
                else:
                    misses.append(i)
                    copies[requests[i]] = []
            for j, result in call([requests[i] for i in misses]) if misses else ():
                i = misses[j]
                self.cache.put(self.model.id, requests[i], result)
                results[i] = result
                self._account(result, cached=False)
                for k in copies.get(requests[i], ()):
                    results[k] = result
                    self._account(result, cached=True)
            if self.meter.post_paid and self.meter.exhausted() and start < len(requests):
                raise BudgetExhausted(self.meter.describe())
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise BackendError(f"{self.model.id} returned no result for {len(missing)} of {len(requests)} requests")
        return [r for r in results if r is not None]

    def _account(self, result: Completion | ContinuationScores, *, cached: bool) -> None:
        completion_tokens = result.completion_tokens if isinstance(result, Completion) else 0
        usd = self.price.cost(result.prompt_tokens, completion_tokens) if self.price is not None else None
        self.meter.record(result.prompt_tokens, completion_tokens, cached=cached, usd=usd)
        self._tick()

    def _tick(self) -> None:
        if self.on_result is not None:
            self.on_result()
