"""Evaluation on a Ray cluster: a `Model` whose calls are spread over Ray actors, each holding the same backend.

`RayModel(spec, RayExecutor(...))` starts `workers` actors (one CPU each by default, spread over the cluster's nodes);
each builds the backend from the same spec on its own node (the embedded llama.cpp model, a GGUF file, an
OpenAI-compatible URL). A batch is cut into pieces of the backend's own concurrency and fed to whichever worker is
free (two pieces in flight per worker, so none idles for a round trip); results are yielded as pieces finish.

The model keeps the backend's `id`, so everything keyed by it is unchanged: the call cache, which stays on the driver
(a warm cache sends nothing to the cluster, and a Ray run fills the same keys a local run does), the run's recorded
model, resume's same-model check. Backends are deterministic given a request (greedy or seeded sampling; llama.cpp's
prefix reuse re-decodes ≥ 2 tokens, which matches a fresh evaluation), so where a request runs does not change its
result: a seeded run gives what the local executor gives. White-box (torch) models are refused: gradient methods
need the model's tensors in the optimizer's own process.

Ray is imported here only, when a `RayModel` is made; without it the error says `pip install 'prompthone[ray]'`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prompthone._version import __version__
from prompthone.errors import BackendError, ConfigError, PrompthoneError
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)
from prompthone.models.spec import ModelSpec

logger = logging.getLogger(__name__)

RAY_INSTALL_HINT = "pip install 'prompthone[ray]'"
#: the object store of a cluster we start ourselves: requests and results are small (Ray's minimum is 75 MiB)
LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024
#: pieces queued on each worker at once: one running, one waiting, so a worker never idles for a round trip
IN_FLIGHT_PER_WORKER = 2

Result = Completion | ContinuationScores


@dataclass(frozen=True)
class RayExecutor:
    """Where model calls run with `executor="ray"`: which cluster, how many workers, how big each.

    `address`: `host:port` of a running cluster's head (what `ray start --head` prints), `ray://host:port` (Ray
    client), `auto` (the cluster `ray start` runs on this machine) or `local` (a new cluster in this process's
    machine); None: `$RAY_ADDRESS`, else a new local cluster. `workers`: actors, one backend each (None: as many as
    the cluster has free CPUs for). `cpus_per_worker`: CPUs each actor reserves, also its llama.cpp threads.
    `start_timeout_s`: how long the workers may take to be scheduled and load their model.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    start_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"ray workers must be ≥ 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"cpus per ray worker must be > 0, got {self.cpus_per_worker}")

    def resolved_address(self) -> str:
        """The address to connect to: the given one, else $RAY_ADDRESS, else `local` (start a cluster)."""
        return self.address or os.environ.get("RAY_ADDRESS") or "local"

    def record(self) -> dict[str, Any]:
        """What a run stores so that `resume` can use the same executor (an address holding credentials is left out)."""
        address = self.address if self.address is None or "@" not in self.address else None
        return {"kind": "ray", "address": address, "workers": self.workers, "cpus_per_worker": self.cpus_per_worker}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RayExecutor:
        return cls(address=record.get("address"), workers=record.get("workers"),
                   cpus_per_worker=float(record.get("cpus_per_worker") or 1.0))


def resolve_executor(executor: str | RayExecutor | None) -> RayExecutor | None:
    """`"local"`/None → None (in-process); `"ray"` → a default `RayExecutor`; a `RayExecutor` as given."""
    if executor is None or executor == "local":
        return None
    if executor == "ray":
        return RayExecutor()
    if isinstance(executor, RayExecutor):
        return executor
    raise ConfigError(f"unknown executor {executor!r}; expected 'local', 'ray' or a RayExecutor")


def import_ray() -> Any:
    """The `ray` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"the ray executor needs Ray, which is not installed: {RAY_INSTALL_HINT}") from exc
    return ray


# -- the actor ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself once its backend is built (or why it could not build it)."""

    host: str
    pid: int
    model_id: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    version: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Piece:
    """A worker's answer to one piece of a batch: (index within the piece, result) pairs, and the error that stopped
    it, if any (as text: exceptions do not always survive pickling)."""

    results: list[tuple[int, Result]]
    error: str | None = None
    error_type: str | None = None


class ModelWorker:
    """The body of one Ray actor: a backend built from `spec` on the worker's node, and what reached it."""

    def __init__(self, spec: str, threads: int | None) -> None:
        self.info = WorkerInfo(host=socket.gethostname(), pid=os.getpid(), version=__version__)
        self.model: Any = None
        self.calls = 0
        self.batches = 0
        try:
            self.model = ModelSpec.parse(spec).build(threads=threads)
        except Exception as exc:  # reported by describe(), so the driver raises it as one clear line
            self.info = replace(self.info, error=f"{type(exc).__name__}: {exc}")
            return
        self.info = replace(self.info, model_id=self.model.id, capabilities=self.model.capabilities)

    def describe(self) -> WorkerInfo:
        return self.info

    def run(self, kind: str, requests: list[GenerationRequest] | list[ScoringRequest]) -> Piece:
        """Answer one piece; an error keeps the results finished before it."""
        self.batches += 1
        results: list[tuple[int, Result]] = []
        try:
            for j, result in getattr(self.model, kind)(requests):
                results.append((j, result))
                self.calls += 1
        except Exception as exc:
            return Piece(results, f"{exc}", type(exc).__name__)
        return Piece(results)

    def stats(self) -> dict[str, Any]:
        """Requests answered and pieces received here, and the backend's own counters (server faults) if it has any."""
        backend = getattr(self.model, "stats", None)
        return {"host": self.info.host, "pid": self.info.pid, "calls": self.calls, "batches": self.batches,
                "backend": dict(backend) if isinstance(backend, dict) else None}


# -- the connection ----------------------------------------------------------------------------------------------
class _Connection:
    """The Ray connection RayModels share: opened by the first that needs one, closed with the last that used it.

    A connection the user (or a test) opened with `ray.init` is used and never closed here.
    """

    lock = threading.Lock()
    users = 0
    address = ""

    @classmethod
    def acquire(cls, ray: Any, executor: RayExecutor) -> bool:
        """Connect unless connected; True when this call counts as a user to release later."""
        with cls.lock:
            if ray.is_initialized():
                ours = cls.users > 0
                if executor.address is not None and (not ours or executor.resolved_address() != cls.address):
                    logger.warning("this process is already connected to a Ray cluster: using it, not %s",
                                   executor.address)
                if not ours:
                    return False  # someone else's connection
                cls.users += 1
                return True
            address = executor.resolved_address()
            _check_reachable(address)
            kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if address == "local":
                kwargs.update(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                hint = ""
                if address not in ("local", "auto") and "RAY_AUTH_MODE" not in os.environ:
                    hint = ("; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token "
                            "(~/.ray/auth_token or $RAY_AUTH_TOKEN) here, or --ray-address auto on one of its nodes")
                raise ConfigError(f"could not connect to the Ray cluster at {address}: {exc}{hint}") from exc
            cls.users, cls.address = 1, address
            return True

    @classmethod
    def release(cls, ray: Any) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0:
                cls.users = 0
                ray.shutdown()


def _check_reachable(address: str) -> None:
    """A concrete `host:port` must accept a connection now: Ray itself retries a dead address for minutes."""
    if address in ("local", "auto") or ("://" in address and not address.startswith("ray://")):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"ray address {address!r} is not host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                          "`ray start --head`, or fix --ray-address / $RAY_ADDRESS") from exc


# -- the model ---------------------------------------------------------------------------------------------------
class RayModel:
    """A backend spec run on Ray workers, seen as one `Model` with the backend's id and capabilities.

    Its `max_concurrency` is the sum over workers, so callers that send chunks of it keep every worker busy. Close it
    (or use it as a context manager) to stop the workers; the Ray connection closes with the last RayModel that
    opened it.
    """

    def __init__(self, spec: str | ModelSpec, executor: RayExecutor | None = None) -> None:
        self.model_spec = ModelSpec.parse(spec)
        self.spec = str(self.model_spec)  # the text the workers build from (credentials included: never shown)
        self.executor = executor or RayExecutor()
        if self.model_spec.white_box:
            raise ConfigError(f"model {self.model_spec.masked!r} is white-box (torch): gradient methods need its "
                              "tensors in the optimizer's own process, so it cannot run on Ray workers; "
                              "use --executor local")
        self._ray = import_ray()
        self._workers: list[Any] = []
        self._owns_connection = _Connection.acquire(self._ray, self.executor)
        try:
            infos = self._start_workers()
        except BaseException:
            self.close()
            raise
        self.worker_info = infos
        self.id: str = infos[0].model_id
        caps = infos[0].capabilities
        self._piece = max(1, caps.max_concurrency)
        self.capabilities = replace(caps, white_box=False, max_concurrency=self._piece * len(infos))
        logger.info("%s on %d Ray workers (%s)", self.id, len(infos), ", ".join(sorted({i.host for i in infos})))

    def __repr__(self) -> str:
        return f"RayModel({self.model_spec.masked!r}, workers={len(self._workers)})"

    def __enter__(self) -> RayModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_workers(self) -> list[WorkerInfo]:
        ray, ex = self._ray, self.executor
        count = ex.workers or max(1, int(ray.available_resources().get("CPU", 1) // ex.cpus_per_worker))
        # The "control" group answers stats() while a piece runs; pieces run one at a time in the default group.
        actor = ray.remote(num_cpus=ex.cpus_per_worker, concurrency_groups={"control": 1})(ModelWorker)
        actor = actor.options(scheduling_strategy="SPREAD")
        threads = max(1, int(ex.cpus_per_worker))
        self._workers = [actor.remote(self.spec, threads) for _ in range(count)]
        pending = [w.describe.remote() for w in self._workers]
        ready, waiting = ray.wait(pending, num_returns=len(pending), timeout=ex.start_timeout_s)
        if waiting:
            free = ray.available_resources().get("CPU", 0)
            raise ConfigError(f"only {len(ready)} of {count} Ray workers started within {ex.start_timeout_s:.0f} s "
                              f"(each asks for {ex.cpus_per_worker:g} CPU; {free:g} CPUs free now): ask for fewer "
                              "with --ray-workers, or add nodes")
        infos: list[WorkerInfo] = ray.get(pending)
        for info in infos:
            if info.error is not None:
                raise ConfigError(f"a Ray worker on {info.host} could not build model {self.model_spec.masked!r}: "
                                  f"{info.error} "
                                  "(every node needs prompthone with the model's extra, e.g. prompthone[local])")
            if info.capabilities.white_box:
                raise ConfigError(f"model {self.model_spec.masked!r} is white-box (torch) and cannot run on Ray "
                                  "workers; use --executor local")
        found = {(i.model_id, i.version) for i in infos} | {(infos[0].model_id, __version__)}
        if len(found) > 1:
            seen = "; ".join(f"{i.host}: {i.model_id} (prompthone {i.version})" for i in infos)
            raise ConfigError(f"the Ray workers do not all run the same model and prompthone {__version__} as this "
                              f"process, so results would depend on where a request ran: {seen}")
        return infos

    # -- calls -----------------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        return self._run("generate", requests)  # type: ignore[return-value]

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        if not self.capabilities.score:
            raise BackendError(f"{self.id} cannot score continuations")
        return self._run("score", requests)  # type: ignore[return-value]

    def _run(self, kind: str, requests: Sequence[Any]) -> Iterator[tuple[int, Result]]:
        """Feed pieces to free workers, yield each piece's results when it is done; after an error, let the pieces
        in flight finish (their results are yielded, so the cache keeps them), then raise it."""
        if not self._workers:
            raise BackendError(f"{self!r} is closed")
        ray = self._ray
        starts = list(range(0, len(requests), self._piece))
        next_piece = 0
        in_flight: dict[Any, tuple[int, Any]] = {}  # object ref → (offset of its piece, worker)
        error: PrompthoneError | None = None

        def submit(worker: Any) -> None:
            nonlocal next_piece
            start = starts[next_piece]
            next_piece += 1
            ref = worker.run.remote(kind, list(requests[start:start + self._piece]))
            in_flight[ref] = (start, worker)

        for _ in range(IN_FLIGHT_PER_WORKER):
            for worker in self._workers:
                if next_piece < len(starts):
                    submit(worker)
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            start, worker = in_flight.pop(done[0])
            try:
                piece: Piece = ray.get(done[0])
            except Exception as exc:  # the actor died (its node left the cluster, out of memory, ...)
                piece = Piece([], f"a Ray worker failed: {exc}", "BackendError")
            for j, result in piece.results:
                yield start + j, result
            if piece.error is not None and error is None:
                error = _as_error(piece, self.id)
            if error is None and next_piece < len(starts):
                submit(worker)
        if error is not None:
            raise error

    # -- accounting and shutdown -----------------------------------------------------------------------------
    def worker_stats(self) -> list[dict[str, Any]]:
        """Per worker: host, pid, `calls` (requests that reached it) and `batches` (pieces it received)."""
        refs = [w.stats.options(concurrency_group="control").remote() for w in self._workers]
        return list(self._ray.get(refs, timeout=60))

    @property
    def stats(self) -> dict[str, int] | None:
        """The backend's own counters (a server's requests, retries, faults) summed over workers; None for a backend
        that keeps none (the driver then reports no server faults, as for the same backend run locally)."""
        if not self._workers:
            return None
        total: dict[str, int] | None = None
        for worker in self.worker_stats():
            if worker["backend"] is not None:
                total = total if total is not None else {}
                for key, value in worker["backend"].items():
                    total[key] = total.get(key, 0) + int(value)
        return total

    def close(self) -> None:
        """Stop the workers, and close the Ray connection if this was the last model using the one it opened."""
        workers, self._workers = self._workers, []
        for worker in workers:
            self._ray.kill(worker, no_restart=True)
        if self._owns_connection:
            self._owns_connection = False
            _Connection.release(self._ray)


def _as_error(piece: Piece, model_id: str) -> PrompthoneError:
    """A worker's error as ours: a ConfigError stays one, anything else is the backend failing."""
    message = f"{model_id} on a Ray worker: {piece.error}"
    return ConfigError(message) if piece.error_type == "ConfigError" else BackendError(message)
