"""A counting, budget-capping reverse proxy in front of one OpenAI-compatible server.

Why: the peers count their own calls differently (DSPy counts metric calls, TextGrad counts nothing, promptolution
counts tokens), and some cache. The only fair count is at the wire. Every system gets its own path prefix
`/r/<run_id>/v1/...`; the proxy forwards to the upstream server and, per run:

- counts calls (a request with `n` choices counts `n`), prompt and completion tokens (from the reply's `usage`);
- refuses calls beyond the run's budget with HTTP 403 and error type `budget_exhausted` (a 4xx that OpenAI clients
  and LiteLLM do not retry), counting the refusals separately;
- clamps `max_tokens` (and `max_completion_tokens`) to the run's cap, so no system buys longer generations;
- does not charge a call the upstream failed to answer (5xx, connection error): that is the server's fault.

Model-listing calls (GET) are forwarded and free. `python -m benchmarks.peers.proxy --upstream URL` runs it alone
(runs are then registered with `POST /_runs {"run_id", "budget_calls", "max_tokens"}`; `GET /_runs/<id>` reads one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from benchmarks.peers.job import BUDGET_EXHAUSTED
from prompthone.models.local_server import free_port

COUNTED_ENDPOINTS = ("chat/completions", "completions", "embeddings")
UPSTREAM_TIMEOUT_S = 900.0


@dataclass
class Ledger:
    """One run's account at the proxy."""

    run_id: str
    budget_calls: int
    max_tokens: int
    calls: int = 0  # charged calls (answered by the upstream, or in flight)
    refused: int = 0  # calls refused because the budget was spent
    upstream_failures: int = 0  # calls the upstream failed to answer; not charged
    prompt_tokens: int = 0
    completion_tokens: int = 0
    clamped: int = 0  # requests whose max_tokens the proxy lowered (or set, when absent)
    started: float = field(default_factory=time.time)
    last_call: float | None = None
    trace: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds since start, calls, tokens)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def snapshot(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = self.tokens
        return data


class CountingProxy:
    """The proxy's state and ASGI app; `serve()` runs it on 127.0.0.1 in a background thread."""

    def __init__(self, upstream: str, api_key: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()  # ledgers are read from the harness thread while the server thread writes
        self.app = Starlette(routes=[
            Route("/_runs", self._register, methods=["POST"]),
            Route("/_runs", self._list, methods=["GET"]),
            Route("/_runs/{run_id}", self._read, methods=["GET"]),
            Route("/r/{run_id}/v1/{path:path}", self._forward, methods=["GET", "POST"]),
        ])

    # -- the harness side ---------------------------------------------------------------------------------------
    def open_run(self, run_id: str, budget_calls: int, max_tokens: int) -> str:
        """Start counting a run; returns the path prefix its client uses (append to the proxy's base URL)."""
        with self._lock:
            if run_id in self._ledgers:
                raise ValueError(f"run {run_id!r} is already registered at the proxy")
            self._ledgers[run_id] = Ledger(run_id, budget_calls, max_tokens)
        return f"/r/{run_id}/v1"

    def ledger(self, run_id: str) -> Ledger:
        with self._lock:
            return self._ledgers[run_id]

    @contextlib.contextmanager
    def serve(self, port: int | None = None) -> Iterator[str]:
        """Serve on 127.0.0.1 in a daemon thread; yields the base URL (no trailing slash)."""
        port = port or free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                               timeout_keep_alive=30))
        thread = threading.Thread(target=server.run, name="counting-proxy", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the counting proxy did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    # -- admin endpoints ----------------------------------------------------------------------------------------
    async def _register(self, request: Request) -> Response:
        body = await request.json()
        try:
            prefix = self.open_run(str(body["run_id"]), int(body["budget_calls"]), int(body["max_tokens"]))
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"prefix": prefix})

    async def _list(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse({run_id: ledger.snapshot() for run_id, ledger in self._ledgers.items()})

    async def _read(self, request: Request) -> Response:
        with self._lock:
            ledger = self._ledgers.get(request.path_params["run_id"])
            return JSONResponse(ledger.snapshot()) if ledger else JSONResponse({"error": "unknown run"}, 404)

    # -- forwarding ---------------------------------------------------------------------------------------------
    async def _forward(self, request: Request) -> Response:
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        with self._lock:
            ledger = self._ledgers.get(run_id)
        if ledger is None:
            return _error(404, "unknown_run", f"run {run_id!r} is not registered at the proxy")
        url = f"{self.upstream}/{path}"
        if request.method == "GET" or path not in COUNTED_ENDPOINTS:
            return await _relay(request.method, url, self._headers, await request.body() or None)
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return _error(400, "invalid_json", "request body is not JSON")
        cost = max(1, int(body.get("n") or 1))
        with self._lock:
            if ledger.calls + cost > ledger.budget_calls:
                ledger.refused += cost
                return _error(403, BUDGET_EXHAUSTED,
                              f"{BUDGET_EXHAUSTED}: run {run_id} has spent its {ledger.budget_calls} calls")
            ledger.calls += cost  # reserved now so that concurrent requests cannot overspend
            if path != "embeddings" and _clamp(body, ledger.max_tokens):
                ledger.clamped += 1
        if body.get("stream"):
            return await self._forward_stream(ledger, url, body, cost)
        try:
            async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S) as client:
                reply = await client.post(url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            self._refund(ledger, cost)
            return _error(502, "upstream_error", f"upstream failed: {exc!r}")
        if reply.status_code >= 500:
            self._refund(ledger, cost)
        elif reply.status_code < 400:
            self._book_usage(ledger, _usage(reply.content))
        return Response(reply.content, status_code=reply.status_code,
                        media_type=reply.headers.get("content-type", "application/json"))

    async def _forward_stream(self, ledger: Ledger, url: str, body: dict[str, Any], cost: int) -> Response:
        """Relay a server-sent-event stream; usage is booked from a chunk that carries it, if the server sends one."""
        client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S)
        try:
            upstream = await client.send(client.build_request("POST", url, json=body, headers=self._headers),
                                         stream=True)
        except httpx.HTTPError as exc:
            await client.aclose()
            self._refund(ledger, cost)
            return _error(502, "upstream_error", f"upstream failed: {exc!r}")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for line in upstream.aiter_lines():
                    if line.startswith("data: {") and '"usage"' in line:
                        self._book_usage(ledger, _usage(line.removeprefix("data: ").encode()))
                    yield (line + "\n").encode()
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(chunks(), status_code=upstream.status_code,
                                 media_type=upstream.headers.get("content-type", "text/event-stream"))

    def _refund(self, ledger: Ledger, cost: int) -> None:
        with self._lock:
            ledger.calls -= cost
            ledger.upstream_failures += cost

    def _book_usage(self, ledger: Ledger, usage: dict[str, int]) -> None:
        with self._lock:
            ledger.prompt_tokens += usage.get("prompt_tokens", 0)
            ledger.completion_tokens += usage.get("completion_tokens", 0)
            ledger.last_call = time.time()
            ledger.trace.append((round(ledger.last_call - ledger.started, 3), ledger.calls, ledger.tokens))


def _clamp(body: dict[str, Any], cap: int) -> bool:
    """Lower (or set) the completion-token limit to `cap`; True when the request asked for more or for no limit."""
    asked = [body[key] for key in ("max_tokens", "max_completion_tokens") if body.get(key) is not None]
    body["max_tokens"] = min([cap, *asked])
    if "max_completion_tokens" in body:
        body["max_completion_tokens"] = body["max_tokens"]
    return not asked or max(asked) > cap


def _usage(content: bytes) -> dict[str, int]:
    with contextlib.suppress(ValueError, AttributeError):
        usage = json.loads(content).get("usage") or {}
        return {key: int(usage.get(key) or 0) for key in ("prompt_tokens", "completion_tokens")}
    return {}


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": kind}}, status_code=status)


async def _relay(method: str, url: str, headers: dict[str, str], content: bytes | None) -> Response:
    try:
        async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S) as client:
            reply = await client.request(method, url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        return _error(502, "upstream_error", f"upstream failed: {exc!r}")
    return Response(reply.content, status_code=reply.status_code,
                    media_type=reply.headers.get("content-type", "application/json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the server's base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    proxy = CountingProxy(args.upstream)
    with proxy.serve(args.port) as url:
        print(f"counting proxy on {url} -> {args.upstream}; register runs with POST {url}/_runs", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(asyncio.Event().wait())


if __name__ == "__main__":
    main()
