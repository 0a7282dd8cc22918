"""A simulated inference server for the throughput benchmark: OpenAI chat completions with a fixed service time.

Why a simulation: the question is whether prompthone's client keeps a *fast* server busy (a vLLM cluster answers
hundreds of requests a second), and the real server on this machine (llama_cpp.server, ~5 requests/s) is too slow
to tell a good client from a bad one. This server behaves like a batched GPU server: up to `--slots` requests are
served at once, each taking `--latency` seconds, so it sustains at most slots / latency requests a second and a
client that keeps fewer in flight gets proportionally less. Replies are deterministic functions of the request
(label logprobs for scoring, a short text for generation), with the usage fields a real server returns.

    python -m benchmarks.sim_server --port 8123 --latency 0.05 --slots 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import zlib
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = "sim-model"


def reply(body: dict[str, Any]) -> dict[str, Any]:
    """The completion for one request body: which label wins depends only on the last message's text."""
    messages = body.get("messages") or []
    text = str(messages[-1].get("content", "")) if messages else ""
    prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in messages)
    positive = zlib.crc32(text.encode()) % 2 == 0
    first, second = (" positive", " negative") if positive else (" negative", " positive")
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length",
                              "message": {"role": "assistant", "content": first.strip()}}
    if body.get("logprobs"):
        top = [{"token": first, "logprob": -0.3, "bytes": None}, {"token": second, "logprob": -1.4, "bytes": None}]
        choice["logprobs"] = {"content": [{"token": first, "logprob": -0.3, "bytes": None, "top_logprobs": top}]}
    return {"id": "chatcmpl-sim", "object": "chat.completion", "model": MODEL, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1}}


def build_app(latency: float, slots: int) -> Starlette:
    """The ASGI app: /v1/models and /v1/chat/completions, at most `slots` requests served at once."""
    gate = asyncio.Semaphore(slots)

    async def models(_: Request) -> Response:
        return Response(json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}),
                        media_type="application/json")

    async def completions(request: Request) -> Response:
        body = json.loads(await request.body())
        async with gate:
            await asyncio.sleep(latency)
        return Response(json.dumps(reply(body)), media_type="application/json")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", completions,
                                                                  methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each request takes once served")
    parser.add_argument("--slots", type=int, default=64, help="requests served at once (the batch of a GPU)")
    args = parser.parse_args()
    uvicorn.run(build_app(args.latency, args.slots), host="127.0.0.1", port=args.port, log_level="warning",
                backlog=1024, access_log=False)


if __name__ == "__main__":
    main()
