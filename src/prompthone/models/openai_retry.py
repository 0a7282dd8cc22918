"""Retries of the OpenAI-compatible backend: when to try a failed request again, and a count of what each attempt met.

Kept apart from `openai_compat` (transport, concurrency, the wire): this part decides nothing about HTTP, only how
long to wait after a transient fault (the server's `Retry-After`, else exponential backoff with equal jitter), when to
give up, and what the run summary counts (`stats`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from prompthone.errors import BackendError

NOTICEABLE_WAIT_S = 1.0  # retries that wait this long or longer are logged as warnings

_Result = TypeVar("_Result")


class TransientError(Exception):
    """One failed attempt that is worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Retries:
    """The retry loop and fault counters of one model (`stats` is shared by every request of it, across threads).

    `name` (the base URL) starts each log line; `logger` is the backend's, so users filter retries under its name.
    """

    def __init__(self, name: str, logger: logging.Logger, *, max_retries: int, backoff_base: float,
                 backoff_max: float) -> None:
        self.name, self.logger = name, logger
        self.max_retries, self.backoff_base, self.backoff_max = max_retries, backoff_base, backoff_max
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "failures": 0, "backoff_ms": 0}
        self._lock = threading.Lock()
        self._jitter = random.Random()

    async def run(self, attempt: Callable[[], Awaitable[_Result]], what: str) -> _Result:
        """`attempt()`, tried again on a TransientError; BackendError names `what`, the last fault and the attempts."""
        try:
            # The first attempt runs without tenacity (whose per-call setup costs more CPU than the request itself
            # at hundreds of requests a second); a transient fault hands over to the retry loop.
            return await attempt()
        except TransientError as first:
            if self.max_retries == 0:
                self.count("failures")
                raise BackendError(f"{what} failed after 1 attempt; last error: {first}") from first
            delay = self.backoff_after(1, first)
            self.note_retry(1, first, delay)
            await asyncio.sleep(delay)
        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_retries), wait=self._wait,
                                 retry=retry_if_exception_type(TransientError), before_sleep=self._before_sleep,
                                 reraise=True)
        async def again() -> _Result:  # a coroutine function, which tenacity awaits (a lambda's coroutine it would not)
            return await attempt()

        try:
            result: _Result = await retrying(again)
        except TransientError as exc:
            self.count("failures")
            raise BackendError(f"{what} failed after {self.max_retries + 1} attempts; last error: {exc}") from exc
        return result

    def count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + amount

    def backoff_after(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds before the attempt after `attempt`: the server's Retry-After, else exponential with equal
        jitter."""
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2.0 + self._jitter.uniform(0.0, ceiling / 2.0)

    def note_retry(self, attempt: int, exc: BaseException | None, wait: float) -> None:
        self.count("retries")
        self.count("backoff_ms", round(wait * 1000))
        # A wait a user notices (a server that rate-limits or went away) is a warning; the many short retries of a
        # flaky server are info: the run's summary counts them, and they would bury the final error line.
        level = logging.WARNING if wait >= NOTICEABLE_WAIT_S else logging.INFO
        self.logger.log(level, "%s: attempt %d/%d failed (%s); retrying in %.2f s", self.name,
                        attempt, self.max_retries + 1, exc, wait)

    # tenacity runs attempts 2, 3, ... (the first ran on the fast path), so its attempt numbers are one behind.

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.backoff_after(state.attempt_number + 1, exc)

    def _before_sleep(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        exc = state.outcome.exception() if state.outcome is not None else None
        self.note_retry(state.attempt_number + 1, exc, wait)
