"""An asyncio event loop on a daemon thread, and a bounded fan-out over it.

Why: a server backend wants many requests in flight (64 against a vLLM cluster) while the evaluator and every
optimizer stay plain synchronous code. One thread per request does not scale to that and costs memory per
thread; one event loop does. `fan_out` is the bridge: it starts at most `capacity` worker coroutines that pull
the next request only when a slot of the shared `Semaphore` is free, and hands each result to the calling thread
the moment it arrives. So memory stays flat in the number of requests (nothing is created per pending request
but its index), every batch of one backend shares one bound, and closing the iterator early cancels what is
still running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
_T = TypeVar("_T")

_DONE = object()


class LoopThread:
    """A private event loop running on a daemon thread, for coroutines submitted from any other thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._active: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule `coro` on the loop; the future is tracked until done, so `stop` can cancel it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        with self._lock:
            self._active.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._active.discard(future)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the loop and wait for its result (from a thread other than the loop's)."""
        future = self.submit(coro)
        try:
            return future.result()
        finally:
            future.cancel()

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Cancel every submitted coroutine, wait for them to unwind, run `closing` on the loop, stop it."""
        if not self._thread.is_alive():
            return
        with self._lock:
            active = list(self._active)
        for future in active:
            future.cancel()
        concurrent.futures.wait(active, timeout=30)
        if closing is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(closing(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self.loop.close()


def fan_out(runner: LoopThread, call: Callable[[_Item], Awaitable[_Result]], items: Sequence[_Item],
            slots: asyncio.Semaphore, capacity: int) -> Iterator[tuple[int, _Result]]:
    """Yield (index, result) for each item as it completes, with at most `capacity` calls of this batch and at
    most the semaphore's size over all batches in flight.

    The first failure cancels the rest of the batch and is raised here, unchanged. Closing the iterator early
    (or an exception in the consumer) cancels the requests still running or not yet started.
    """
    if not items:
        return
    results: queue.SimpleQueue[Any] = queue.SimpleQueue()
    failures: list[BaseException] = []

    async def drive() -> None:
        pending = iter(enumerate(items))

        async def worker() -> None:
            while True:
                async with slots:
                    entry = next(pending, None)
                    if entry is None:
                        return
                    index, item = entry
                    try:
                        result = await call(item)
                    except Exception as exc:
                        failures.append(exc)
                        raise
                results.put((index, result))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(capacity, len(items))):
                    group.create_task(worker())
        except BaseException:
            if not failures:
                raise
        finally:
            results.put(_DONE)

    future = runner.submit(drive())
    try:
        while (entry := results.get()) is not _DONE:
            yield entry
        if failures:
            raise failures[0]
        future.result()
    finally:
        future.cancel()
