"""A fake OpenAI-compatible server on 127.0.0.1 for fault injection in tests of the HTTP backend.

It is not a model: it returns one fixed reply, unless the next entry of its fault script says otherwise
(an error status, a 429 with or without Retry-After, a hang past the client's timeout, a malformed body, a 200
without `choices`, a dropped connection). It records every request it receives, so tests can check the
Authorization header, the request bodies, the number of attempts and the peak number of simultaneous requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """What the server does with one request instead of answering normally."""

    status: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    hang: float = 0.0
    drop: bool = False

    @classmethod
    def error(cls, status: int, message: str = "injected fault") -> Fault:
        """An HTTP error with an OpenAI-style JSON error body."""
        return cls(status=status, body=json.dumps({"error": {"message": message, "code": status}}).encode())

    @classmethod
    def rate_limited(cls, retry_after: str | None = None) -> Fault:
        """A 429, with a `Retry-After` header when `retry_after` is given."""
        fault = cls.error(429, "rate limit reached")
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls(status=429, body=fault.body, headers=headers)

    @classmethod
    def unavailable(cls, retry_after: str | None = None) -> Fault:
        """A 503, with a `Retry-After` header when `retry_after` is given."""
        fault = cls.error(503, "server overloaded")
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls(status=503, body=fault.body, headers=headers)

    @classmethod
    def unauthorized(cls, message: str = "Incorrect API key provided") -> Fault:
        return cls.error(401, message)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Hold the request for `seconds` (released early when the server stops), then answer normally."""
        return cls(hang=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls(status=200, body=b'{"choices": [{"message": ')

    @classmethod
    def no_choices(cls) -> Fault:
        return cls(status=200, body=json.dumps({"id": "x", "object": "chat.completion"}).encode())

    @classmethod
    def dropped(cls) -> Fault:
        """Close the connection without any response."""
        return cls(drop=True)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)


@dataclass
class FakeOpenAIServer:
    """A ThreadingHTTPServer on an ephemeral port serving /v1/models and /v1/chat/completions.

    `reply_text` is the fixed assistant reply; `top_logprobs` the first-position top tokens returned when a
    request asks for logprobs (None: reply without logprobs, like a server that does not support them).
    `delay` holds every request that long, so concurrent requests overlap and `max_in_flight` can be observed.
    `gate` (> 0) holds every request until that many are in flight at once (at most `gate_timeout` seconds): a
    client that keeps `gate` requests in flight reaches exactly that count however slow the machine is, and one
    that keeps fewer is seen to (the gate times out and `max_in_flight` stays below it).
    """

    reply_text: str = "positive"
    top_logprobs: Mapping[str, float] | None = field(
        default_factory=lambda: {" positive": -0.2, "Positive": -2.5, " negative": -1.9, " neutral": -4.0})
    model_ids: tuple[str, ...] = ("fake-model",)
    delay: float = 0.0
    gate: int = 0
    gate_timeout: float = 20.0
    requests: list[RecordedRequest] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._release = threading.Event()
        self._gate_open = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *faults: Fault) -> None:
        """Queue faults: the next requests get them in order; later requests are answered normally."""
        with self._lock:
            self._faults.extend(faults)

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled requests, stop serving and close the socket."""
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- used by the handler -------------------------------------------------------------------------------

    def _enter(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if self.gate and self._in_flight >= self.gate:
                self._gate_open.set()
            return self._faults.popleft() if self._faults else None

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _hold(self, seconds: float) -> None:
        if self.gate:
            self._gate_open.wait(self.gate_timeout)
        if seconds > 0:
            self._release.wait(seconds)

    def _reply(self, path: str, body: Any) -> tuple[int, bytes]:
        if path.rstrip("/").endswith("/models"):
            data: dict[str, Any] = {"object": "list",
                                    "data": [{"id": m, "object": "model"} for m in self.model_ids]}
            return 200, json.dumps(data).encode()
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, json.dumps({"error": {"message": f"no route {path}"}}).encode()
        messages = body.get("messages", []) if isinstance(body, dict) else []
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": self.reply_text}}
        if isinstance(body, dict) and body.get("logprobs") and self.top_logprobs is not None:
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in self.top_logprobs.items()]
            best = max(self.top_logprobs, key=self.top_logprobs.__getitem__)
            first = {"token": best, "logprob": self.top_logprobs[best], "bytes": None, "top_logprobs": top}
            choice["logprobs"] = {"content": [first]}
        data = {"id": "chatcmpl-fake", "object": "chat.completion", "model": self.model_ids[0],
                "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(self.reply_text.split()),
                          "total_tokens": prompt_tokens + len(self.reply_text.split())}}
        return 200, json.dumps(data).encode()


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 resets connections when 64 arrive at once


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self._handle(body)

    def _handle(self, body: Any) -> None:
        fake = self.fake
        fault = fake._enter(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))
        try:
            fake._hold(fake.delay + (fault.hang if fault else 0.0))
        finally:
            fake._leave()  # before answering, so a client's next request never overlaps this one in the count
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        if fault is not None and fault.body is not None:
            status, payload = fault.status, fault.body
        else:
            status, payload = fake._reply(self.path, body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in fault.headers if fault else ():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `requests`, not stderr."""
