"""A `Model` backend for any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI).

Requests run on one private asyncio loop through one `aiohttp` session: up to `max_concurrency` of them in
flight over every batch of the model together (`async_runner.fan_out`), so a vLLM cluster can be kept busy with
64 at once while callers stay synchronous. Optional client-side rate limits (requests per second, tokens per
minute; `aiolimiter`) keep a paid API under its quota. Transient faults (429, 5xx, connection errors, timeouts,
truncated or malformed 200 replies) are retried with exponential backoff and jitter (`openai_retry`); a
`Retry-After` delays that request and pauses new requests of every batch until it has passed.

The API key is read from the environment once, kept in memory only and sent only as an `Authorization`
header: it never appears in `id`, `repr`, log lines or exception messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import urllib.parse
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeVar, cast

import aiohttp
import httpx
from aiolimiter import AsyncLimiter

from prompthone.errors import BackendError, ConfigError
from prompthone.models.async_runner import LoopThread, fan_out
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)
from prompthone.models.openai_retry import Retries, TransientError
from prompthone.models.openai_wire import (
    SPEC_PREFIX,
    OpenAISpec,
    first_position_top,
    generation_body,
    has_choices,
    has_model_list,
    label_logprobs,
    mask_credentials,
    parse_openai_spec,
    parse_retry_after,
    parse_spec,
    room_for_completion,
    scoring_body,
    server_message,
    usage_tokens,
)

logger = logging.getLogger(__name__)

KEY_ENV_OVERRIDE = "PROMPTHONE_API_KEY"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
DEFAULT_MAX_CONCURRENCY = 8
# `label_logprobs`, `parse_spec` and `mask_credentials` live in `openai_wire` and are importable from here too
__all__ = ["DEFAULT_MAX_CONCURRENCY", "KEY_ENV_OVERRIDE", "RETRY_AFTER_STATUSES", "RETRY_STATUSES",
           "OpenAICompatModel", "environment_proxy", "estimated_tokens", "label_logprobs", "mask_credentials",
           "parse_spec", "split_credentials"]

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
_Json = dict[str, Any]


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without a `user:password@` part, and that part as HTTP basic auth.

    A URL with credentials is shown in model ids, run configs, cache keys, messages and logs; taking them out here,
    once, keeps them in memory only, like the API key.
    """
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, None
    clean = str(parsed.copy_with(username=None, password=None))
    return clean.rstrip("/"), (parsed.username, parsed.password)


def estimated_tokens(body: _Json | None) -> float:
    """Tokens a request will use, guessed before it is sent (for the tokens-per-minute limit): about four
    characters a token for the prompt, plus the most it may generate."""
    if not body:
        return 1.0
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", ()) if isinstance(m, dict))
    return float(prompt // 4 + int(body.get("max_tokens") or 0) + 1)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` ($HTTP(S)_PROXY, minus $NO_PROXY), read once per session."""
    scheme, host = urllib.parse.urlsplit(url).scheme, urllib.parse.urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies_environment().get(scheme)


class _Transport:
    """The model's event-loop thread and HTTP session: what must be shut down however the model ends. It holds
    no reference to the model, so the model's finalizer can run it when the model is garbage-collected."""

    def __init__(self, runner: LoopThread) -> None:
        self.runner = runner
        self.session: aiohttp.ClientSession | None = None  # opened on the loop, at the first request

    def shutdown(self) -> None:
        self.runner.stop(closing=self._close_session)

    async def _close_session(self) -> None:
        if self.session is not None:
            await self.session.close()


class OpenAICompatModel:
    """A model served over the OpenAI chat-completions API: generation, plus label scoring from logprobs.

    >>> spec = "openai:http://127.0.0.1:8000/v1/qwen2.5-7b?max_in_flight=64&requests_per_second=50"
    >>> model = OpenAICompatModel.from_spec(spec)  # doctest: +SKIP

    Scoring reads the top logprobs of the first generated token only (see `label_logprobs`): labels whose
    first tokens coincide cannot be separated by this backend. Pass `logprobs=False` (on the CLI:
    `--scoring generate`) for servers that do not return logprobs; `capabilities.score` is then false.

    `max_concurrency` bounds the requests in flight; `requests_per_second` and `tokens_per_minute` (None: no
    limit) are client-side rate limits. The token limit counts an estimate made before sending (prompt characters
    / 4 + `max_tokens`), since the true count is only known from the reply; one request counts at most ten
    seconds' worth of the limit.

    `stats` counts, for run summaries: `requests` (HTTP attempts), `retries`, `failures` (calls that ran out
    of retries), `backoff_ms` (time spent waiting), `timeouts`, `connection_errors`, `malformed` (unusable
    200 replies), `max_tokens_capped` (generations sent again with the max_tokens a context-length refusal named
    as the room left: max_tokens is a ceiling, as on the embedded backends) and `http_<status>` for each non-2xx
    status seen.
    """

    #: what the backend can do with its default settings (`prompthone models` lists these without a server)
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(generate=True, score=True,
                                                        max_concurrency=DEFAULT_MAX_CONCURRENCY)

    def __init__(self, base_url: str, model: str | None = None, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 20.0, max_concurrency: int = DEFAULT_MAX_CONCURRENCY, logprobs: bool = True,
                 top_logprobs: int = 20, requests_per_second: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {max_retries}")
        for name, limit in (("requests_per_second", requests_per_second), ("tokens_per_minute", tokens_per_minute)):
            if limit is not None and limit <= 0:
                raise ConfigError(f"{name} must be positive, got {limit}")
        self.base_url, credentials = split_credentials(base_url.rstrip("/"))
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.max_concurrency, self.logprobs, self.top_logprobs = max_concurrency, logprobs, top_logprobs
        self.requests_per_second, self.tokens_per_minute = requests_per_second, tokens_per_minute
        self.capabilities = replace(self.CAPABILITIES, score=logprobs, max_concurrency=max_concurrency)
        self._retries = Retries(self.base_url, logger, max_retries=max_retries, backoff_base=backoff_base,
                                backoff_max=backoff_max)
        self.stats: dict[str, int] = self._retries.stats
        self._secret = os.environ.get(KEY_ENV_OVERRIDE) or os.environ.get(api_key_env) or ""
        self._runner = LoopThread(f"prompthone-openai-{self.base_url}")
        self._transport = _Transport(self._runner)
        # Shut down on close(), on garbage collection or at interpreter exit, whichever comes first: a model a
        # process never closes (the CLI keeps loaded models) must not leave a session open or a loop running.
        self._finalizer = weakref.finalize(self, self._transport.shutdown)
        # Created on the loop thread: an asyncio primitive belongs to the loop it first runs on.
        self._slots = asyncio.Semaphore(max_concurrency)
        self._paused_until = 0.0  # loop time before which no new request is sent (a server's Retry-After)
        # Leaky buckets: requests are spaced evenly (no burst); tokens may burst by ten seconds' worth, so one
        # long prompt is not held back by its own size. Over any minute the server sees at most the limit plus
        # that burst.
        self._request_limit = AsyncLimiter(1, 1.0 / requests_per_second) if requests_per_second else None
        self._token_limit = AsyncLimiter(tokens_per_minute / 6.0, 10.0) if tokens_per_minute else None
        self._auth = aiohttp.BasicAuth(credentials[0], credentials[1]) if credentials else None
        self._proxy: str | None = None
        try:
            self.model = model or self._runner.run(self._discover_model())
        except BaseException:
            self.close()
            raise
        self.id = f"{SPEC_PREFIX}{self.base_url}#{self.model}"

    @classmethod
    def from_spec(cls, spec: str | OpenAISpec, **options: Any) -> OpenAICompatModel:
        """Build from `openai:<url>[/<model>|#<model>][?option=value&...]`, or from that spec already parsed (see
        `parse_openai_spec`: max_in_flight, requests_per_second, tokens_per_minute, timeout, max_retries, ...);
        keyword options go to the constructor and win over the spec's."""
        parsed = spec if isinstance(spec, OpenAISpec) else parse_openai_spec(spec)
        return cls(parsed.base_url, parsed.model, **{**parsed.keywords(), **options})

    def __repr__(self) -> str:
        limits = "".join(f", {name}={value:g}" for name, value in (
            ("requests_per_second", self.requests_per_second), ("tokens_per_minute", self.tokens_per_minute))
            if value is not None)
        return (f"OpenAICompatModel(base_url={self.base_url!r}, model={self.model!r}, "
                f"max_concurrency={self.max_concurrency}, logprobs={self.logprobs}{limits})")

    __str__ = __repr__

    def __enter__(self) -> OpenAICompatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Model protocol -------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield (index, completion) as each chat completion returns, at most `max_concurrency` at a time."""
        self._refuse_prefill(requests)
        return self._run_all(self._generate_one, requests)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        """Yield (index, label log-probabilities) from one 1-token, top-logprobs completion per request."""
        if not self.logprobs:
            raise BackendError(f"{self.id} was created with logprobs=False and cannot score continuations")
        self._refuse_prefill(requests)
        return self._run_all(self._score_one, requests)

    def _refuse_prefill(self, requests: Sequence[GenerationRequest] | Sequence[ScoringRequest]) -> None:
        # The chat API has no portable way to continue a partly written reply (capabilities.prefill is false):
        # callers ask the capability first; sending the request anyway would silently answer something else.
        if any(r.prefill for r in requests):
            raise ConfigError(f"{self.id} cannot continue a partly written reply (prefill); "
                              "check capabilities.prefill before sending one")

    def close(self) -> None:
        """Cancel running and queued requests, close the HTTP connections and stop the loop (idempotent)."""
        self._finalizer()

    @property
    def _closed(self) -> bool:
        return not self._finalizer.alive

    # -- one request each ----------------------------------------------------------------------------------

    async def _generate_one(self, request: GenerationRequest) -> Completion:
        body = generation_body(self.model, request)
        try:
            data = await self._request("POST", "chat/completions", body, has_choices)
        except BackendError as exc:
            # max_tokens is a ceiling, as on the embedded backends: a server that says the reply cannot be that long
            # in its window gets the same request once more, capped at the room it names (counted in `stats`).
            room = room_for_completion(str(exc))
            if room is None or not 0 < room < body["max_tokens"]:
                raise
            self._retries.count("max_tokens_capped")
            data = await self._request("POST", "chat/completions", {**body, "max_tokens": room}, has_choices)
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        return Completion(text=str(text or ""), prompt_tokens=usage_tokens(data, "prompt_tokens"),
                          completion_tokens=usage_tokens(data, "completion_tokens"),
                          finish_reason=choice.get("finish_reason"))

    async def _score_one(self, request: ScoringRequest) -> ContinuationScores:
        body = scoring_body(self.model, request, self.top_logprobs)
        data = await self._request("POST", "chat/completions", body, has_choices)
        top = first_position_top(data["choices"][0])
        if top is None:
            raise BackendError(
                f"the server at {self.base_url} (model {self.model!r}) does not return logprobs, so it "
                "cannot score labels: use `--scoring generate` (Python: logprobs=False) to score by generating answers")
        return ContinuationScores(logprobs=label_logprobs(top, request.continuations),
                                  prompt_tokens=usage_tokens(data, "prompt_tokens"))

    async def _discover_model(self) -> str:
        data = await self._request("GET", "models", None, has_model_list)
        for entry in data["data"]:
            if isinstance(entry, dict) and entry.get("id"):
                return str(entry["id"])
        raise BackendError(f"the server at {self.base_url}/models lists no models: name one in the spec, "
                           f"e.g. 'openai:{self.base_url}#<model>'")

    # -- concurrency ---------------------------------------------------------------------------------------

    def _run_all(self, call: Callable[[_Item], Awaitable[_Result]],
                 items: Sequence[_Item]) -> Iterator[tuple[int, _Result]]:
        """Run `call` over `items` on the model's loop; yield (index, result) as each completes.

        The semaphore is shared by every batch of this model, so `max_concurrency` bounds all of them together.
        Closing the generator early cancels the requests still running or not yet started.
        """
        if self._closed:
            raise BackendError(f"{self.id} is closed")
        try:
            yield from fan_out(self._runner, call, items, self._slots, self.max_concurrency)
        except concurrent.futures.CancelledError:
            raise BackendError(f"{self.id} was closed while its requests were running") from None

    # -- HTTP with retries ---------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: _Json | None,
                       check: Callable[[Any], str | None]) -> _Json:
        """One API call, retried on transient faults; BackendError names the URL, last fault and attempts."""
        url = f"{self.base_url}/{path}"
        return await self._retries.run(lambda: self._attempt(method, url, body, check), f"{method} {url}")

    async def _admit(self, body: _Json | None) -> None:
        """Wait out a server's Retry-After pause and the client-side rate limits before one attempt."""
        loop = asyncio.get_running_loop()
        while (wait := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(wait)
        if self._request_limit is not None:
            await self._request_limit.acquire()
        if self._token_limit is not None:
            await self._token_limit.acquire(min(estimated_tokens(body), self._token_limit.max_rate))

    async def _attempt(self, method: str, url: str, body: _Json | None,
                       check: Callable[[Any], str | None]) -> _Json:
        await self._admit(body)
        self._retries.count("requests")
        session = self._open_session()
        try:
            async with session.request(method, url, json=body, proxy=self._proxy) as response:
                status, reason, raw = response.status, response.reason or "", await response.read()
                retry_hint = response.headers.get("Retry-After")
        except TimeoutError as exc:
            self._retries.count("timeouts")
            raise TransientError(f"no reply within {self.timeout:g} s ({type(exc).__name__})") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            # refused, reset, closed mid-reply, or a body shorter than its Content-Length (a truncated stream)
            self._retries.count("connection_errors")
            detail = f"{type(exc).__name__}: {self._redact(str(exc))}"
            raise TransientError(f"connection error ({detail})") from exc
        except aiohttp.ClientError as exc:
            detail = f"{type(exc).__name__}: {self._redact(str(exc))}"
            raise BackendError(f"{method} {url} failed: {detail}") from exc
        if not 200 <= status < 300:
            self._retries.count(f"http_{status}")
            message = self._redact(server_message(raw, reason))
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(retry_hint if status in RETRY_AFTER_STATUSES else None)
                if retry_after:
                    self._pause(min(retry_after, self.backoff_max))
                raise TransientError(f"HTTP {status}: {message}", retry_after=retry_after)
            raise BackendError(f"{method} {url} failed with HTTP {status}: {message}{self._hint(status)}")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            self._retries.count("malformed")
            raise TransientError("HTTP 200 with a body that is not valid JSON") from exc
        problem = check(data)
        if problem is not None:
            self._retries.count("malformed")
            raise TransientError(f"HTTP 200 but {problem}")
        return cast(_Json, data)

    def _open_session(self) -> aiohttp.ClientSession:
        """The model's one session (connection pool), created on the loop the first time it is needed."""
        if self._transport.session is None:
            # One Authorization header: credentials in the URL (basic auth) win over an API key (bearer).
            headers = {"Authorization": f"Bearer {self._secret}"} if self._secret and self._auth is None else {}
            # The proxy settings of the environment are read once here: aiohttp's trust_env reads every environment
            # variable and ~/.netrc on every request (most of the client's CPU at 1,000 requests/s).
            self._proxy = environment_proxy(self.base_url)
            self._transport.session = aiohttp.ClientSession(
                headers=headers, auth=self._auth, timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=self.max_concurrency))
        return self._transport.session

    def _pause(self, seconds: float) -> None:
        """Hold every new request of this model for `seconds`: the server asked for room, not one request."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return (f" (check the API key in ${KEY_ENV_OVERRIDE} or ${self.api_key_env}"
                    f"{'; none is set' if not self._secret else ''})")
        if status == 404:
            return " (check that the base URL ends with /v1 and the model name is one the server serves)"
        return ""
