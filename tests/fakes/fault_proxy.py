"""A fault-injecting reverse proxy on 127.0.0.1 in front of a real OpenAI-compatible server (tests only).

Unlike `fake_openai_server` (one fixed reply), every request that is let through is answered by the real upstream
(e.g. `llama_cpp.server` on the embedded model), so a run through the proxy can be compared with a clean run against
the same upstream. For each request the proxy draws, from a seeded RNG and at the configured per-kind rates, either
pass-through or one fault (`FAULT_KINDS`), and counts what it injected per kind, so a test can compare the counts
with what the client counted (`CLIENT_STAT` maps each kind to the client's `stats` key).

It is a raw asyncio TCP server speaking just enough HTTP/1.1 (Content-Length bodies, keep-alive) to control what a
client sees byte by byte: connection resets are real RSTs (SO_LINGER 0, then close), a truncated reply promises
Content-Length N and sends fewer bytes. Pass-through goes to the upstream with `httpx.AsyncClient`.

The draw happens when a request's first line has arrived, in arrival order, so the k-th request always gets the k-th
draw: the same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

#: every fault the proxy can inject, in the order the RNG's draw is mapped onto them
FAULT_KINDS = ("rate_limited_retry_after", "rate_limited", "server_error", "unavailable", "reset_before_request",
               "reset_after_request", "hang", "malformed_json", "empty_choices", "truncated")

#: which counter of `OpenAICompatModel.stats` each injected fault should raise ("dead": the proxy refuses everything)
CLIENT_STAT = {"rate_limited_retry_after": "http_429", "rate_limited": "http_429", "server_error": "http_500",
               "unavailable": "http_503", "reset_before_request": "connection_errors",
               "reset_after_request": "connection_errors", "hang": "timeouts", "malformed_json": "malformed",
               "empty_choices": "malformed", "truncated": "connection_errors", "dead": "connection_errors"}

_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
            502: "Bad Gateway"}
_MAX_HEAD = 64 * 1024


class _ClientGone(Exception):
    """The client closed its connection in the middle of a request."""


@dataclass
class FaultProxy:
    """A started proxy forwards `http://127.0.0.1:<port>/...` to `upstream` (an origin or a base URL; only its
    scheme, host and port are used), injecting faults at `rates` (kind → probability; the rest pass through).

    `retry_after` is the Retry-After value of the 429s that carry one; a hang holds the request, unanswered, until the
    client gives up (its timeout) or `hang_s` passes. `die_after=N` makes the proxy refuse every request after the
    N-th one it let through (a server that went away for good; `revive()` brings it back), as does `kill()` at once.
    """

    upstream: str
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after: str = "0.05"
    hang_s: float = 60.0
    die_after: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    passed: int = 0
    requests: int = 0
    #: pass-through requests whose client had gone before the upstream answered (a client timeout not injected here)
    client_gone: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if sum(self.rates.values()) > 1.0:
            raise ValueError(f"fault rates add up to {sum(self.rates.values()):.3f} > 1")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._dead = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._port = 0
        url = httpx.URL(self.upstream)
        self._origin = f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"

    # -- life cycle ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The proxy's `/v1` base URL, for `openai:<base_url>#<model>`."""
        assert self._port, "proxy not started"
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(timeout=10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection; stop the loop thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kill(self) -> None:
        """From now on reset every request (an upstream that is gone for good)."""
        with self._lock:
            self._dead = True

    def revive(self) -> None:
        """Serve again (after `kill` or `die_after`), at the configured fault rates."""
        with self._lock:
            self._dead, self.die_after = False, None

    def counts(self) -> dict[str, int]:
        """What the proxy did so far: `requests` seen, `passed` through, and each injected kind."""
        with self._lock:
            return {"requests": self.requests, "passed": self.passed, "client_gone": self.client_gone,
                    **dict(self.injected)}

    def expected_client_stats(self) -> dict[str, int]:
        """The client `stats` counters the injected faults should have raised (before any client-side extras)."""
        with self._lock:
            expected: Counter[str] = Counter()
            for kind, n in self.injected.items():
                expected[CLIENT_STAT[kind]] += n
            return dict(expected)

    # -- serving ---------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._origin, timeout=httpx.Timeout(600.0),
                                         limits=httpx.Limits(max_connections=32))
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(task)
            if not writer.is_closing():
                writer.close()

    def _draw(self) -> str | None:
        """Pass-through (None) or the fault for the next request, from the seeded RNG."""
        with self._lock:
            self.requests += 1
            if self._dead or (self.die_after is not None and self.passed >= self.die_after):
                self.injected["dead"] += 1
                return "dead"
            x, edge = self._rng.random(), 0.0
            for kind in FAULT_KINDS:
                edge += self.rates.get(kind, 0.0)
                if x < edge:
                    self.injected[kind] += 1
                    return kind
            self.passed += 1
            return None

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request of a keep-alive connection; False when the connection is done."""
        first = await reader.readline()  # the request line: a request has started, the client is committed to it
        if not first:
            return False
        kind = self._draw()
        if kind in ("dead", "reset_before_request"):
            _reset(writer)
            return False
        method, target, head = await _read_head(first, reader)
        body = await reader.readexactly(int(head.get("content-length", "0") or 0))
        if kind == "reset_after_request":
            _reset(writer)
            return False
        if kind == "hang":
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(), self.hang_s)  # returns at EOF: the client's timeout
            _reset(writer)
            return False
        if kind is not None and kind != "truncated":
            status, payload, extra = _canned(kind, self.retry_after)
            await _respond(writer, status, payload, extra)
            return True
        status, payload, content_type = await self._forward(method, target, head, body)
        if reader.at_eof():  # the client gave up while the upstream worked: a timeout the proxy did not inject
            with self._lock:
                self.client_gone += 1
            return False
        if kind == "truncated":  # the upstream's real reply, cut: Content-Length promises more than is sent
            await _respond(writer, status, payload, (("Content-Type", content_type),), truncate=True)
            return False
        await _respond(writer, status, payload, (("Content-Type", content_type),))
        return head.get("connection", "").lower() != "close"

    async def _forward(self, method: str, target: str, head: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        assert self._client is not None
        headers = {k: v for k, v in head.items() if k in ("content-type", "authorization", "accept")}
        try:
            response = await self._client.request(method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            return 502, json.dumps({"error": {"message": f"proxy: upstream failed: {exc!r}"}}).encode(), \
                "application/json"
        return response.status_code, response.content, response.headers.get("content-type", "application/json")


async def _read_head(first: bytes, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """(method, target, lower-cased headers) of a request whose first line is `first`."""
    parts = first.decode("latin-1").split()
    if len(parts) < 2:
        raise _ClientGone(f"bad request line {first!r}")
    head: dict[str, str] = {}
    size = len(first)
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        size += len(line)
        if size > _MAX_HEAD:
            raise _ClientGone("request head too large")
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            head[name.strip().lower()] = value.strip()
    return parts[0], parts[1], head


def _canned(kind: str, retry_after: str) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    """The reply of a fault that the proxy answers itself: (status, body, extra headers)."""
    def error(status: int, message: str) -> bytes:
        return json.dumps({"error": {"message": f"injected fault: {message}", "code": status}}).encode()

    json_type = ("Content-Type", "application/json")
    if kind == "rate_limited_retry_after":
        return 429, error(429, "rate limit reached"), (json_type, ("Retry-After", retry_after))
    if kind == "rate_limited":
        return 429, error(429, "rate limit reached"), (json_type,)
    if kind == "server_error":
        return 500, error(500, "internal server error"), (json_type,)
    if kind == "unavailable":
        return 503, error(503, "server overloaded"), (json_type,)
    if kind == "malformed_json":
        return 200, b'{"id": "chatcmpl-fault", "choices": [{"message": ', (json_type,)
    if kind == "empty_choices":
        return 200, json.dumps({"id": "chatcmpl-fault", "object": "chat.completion", "choices": []}).encode(), \
            (json_type,)
    raise ValueError(f"no canned reply for {kind!r}")


async def _respond(writer: asyncio.StreamWriter, status: int, payload: bytes,
                   headers: tuple[tuple[str, str], ...], *, truncate: bool = False) -> None:
    """Write one HTTP/1.1 response; `truncate` sends half the promised body, then closes the connection (FIN)."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(payload)}",
             *(f"{name}: {value}" for name, value in headers)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    writer.write(payload[:len(payload) // 2] if truncate else payload)
    await writer.drain()
    if truncate:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
