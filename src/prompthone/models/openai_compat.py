"""A `Model` backend for any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI).

Requests go through one shared, thread-safe `httpx.Client`; transient faults (429, 5xx, connection errors,
timeouts, malformed 200 replies) are retried by `tenacity` with exponential backoff and jitter, honouring
`Retry-After`. Batches run on a bounded thread pool and yield results as they complete.

The API key is read from the environment once, kept in memory only and sent only as an `Authorization`
header: it never appears in `id`, `repr`, log lines or exception messages.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, TypeVar, cast

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from prompthone.errors import BackendError, ConfigError
from prompthone.models.base import (
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    ScoringRequest,
)
from prompthone.models.openai_wire import (
    SPEC_PREFIX,
    first_position_top,
    has_choices,
    has_model_list,
    label_logprobs,
    messages_json,
    parse_retry_after,
    parse_spec,
    server_message,
    usage_tokens,
)

logger = logging.getLogger(__name__)

KEY_ENV_OVERRIDE = "PROMPTHONE_API_KEY"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})

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


def mask_credentials(spec: str) -> str:
    """A model spec with any `user:password@` in its URL replaced by `***@` (for what prompthone writes down)."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", spec)


class _TransientError(Exception):
    """One failed attempt that is worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAICompatModel:
    """A model served over the OpenAI chat-completions API: generation, plus label scoring from logprobs.

    >>> model = OpenAICompatModel.from_spec("openai:http://127.0.0.1:8000/v1/qwen2.5-7b")  # doctest: +SKIP

    Scoring reads the top logprobs of the first generated token only (see `label_logprobs`): labels whose
    first tokens coincide cannot be separated by this backend. Pass `logprobs=False` (on the CLI:
    `--scoring generate`) for servers that do not return logprobs; `capabilities.score` is then false.

    `stats` counts, for run summaries: `requests` (HTTP attempts), `retries`, `failures` (calls that ran out
    of retries), `backoff_ms` (time spent waiting), `timeouts`, `connection_errors`, `malformed` (unusable
    200 replies) and `http_<status>` for each non-2xx status seen.
    """

    def __init__(self, base_url: str, model: str | None = None, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 20.0, max_concurrency: int = 8, logprobs: bool = True,
                 top_logprobs: int = 20) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {max_retries}")
        self.base_url, credentials = split_credentials(base_url.rstrip("/"))
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.max_concurrency, self.logprobs, self.top_logprobs = max_concurrency, logprobs, top_logprobs
        self.capabilities = Capabilities(generate=True, score=logprobs, white_box=False,
                                         max_concurrency=max_concurrency)
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "failures": 0, "backoff_ms": 0}
        self._stats_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._jitter = random.Random()
        self._closed = False
        self._secret = os.environ.get(KEY_ENV_OVERRIDE) or os.environ.get(api_key_env) or ""
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._client = httpx.Client(
            headers=headers, auth=credentials, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=2 * max_concurrency,
                                max_keepalive_connections=max_concurrency))
        try:
            self.model = model or self._discover_model()
        except BaseException:
            self._client.close()
            raise
        self.id = f"{SPEC_PREFIX}{self.base_url}#{self.model}"

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> OpenAICompatModel:
        """Build from `openai:<url>[/<model>|#<model>]` (see `parse_spec`); options go to the constructor."""
        base_url, model = parse_spec(spec)
        return cls(base_url, model, **options)

    def __repr__(self) -> str:
        return (f"OpenAICompatModel(base_url={self.base_url!r}, model={self.model!r}, "
                f"max_concurrency={self.max_concurrency}, logprobs={self.logprobs})")

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
        """Cancel queued requests, wait for running ones and close the HTTP connections."""
        with self._executor_lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- one request each ----------------------------------------------------------------------------------

    def _generate_one(self, request: GenerationRequest) -> Completion:
        body: _Json = {"model": self.model, "messages": messages_json(request.messages),
                       "max_tokens": request.max_tokens, "temperature": request.temperature,
                       "top_p": request.top_p}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        data = self._request("POST", "chat/completions", body, has_choices)
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        return Completion(text=str(text or ""), prompt_tokens=usage_tokens(data, "prompt_tokens"),
                          completion_tokens=usage_tokens(data, "completion_tokens"),
                          finish_reason=choice.get("finish_reason"))

    def _score_one(self, request: ScoringRequest) -> ContinuationScores:
        body: _Json = {"model": self.model, "messages": messages_json(request.messages), "max_tokens": 1,
                       "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs}
        data = self._request("POST", "chat/completions", body, has_choices)
        top = first_position_top(data["choices"][0])
        if top is None:
            raise BackendError(
                f"the server at {self.base_url} (model {self.model!r}) does not return logprobs, so it "
                "cannot score labels: use `--scoring generate` (Python: logprobs=False) to score by generating answers")
        return ContinuationScores(logprobs=label_logprobs(top, request.continuations),
                                  prompt_tokens=usage_tokens(data, "prompt_tokens"))

    def _discover_model(self) -> str:
        data = self._request("GET", "models", None, has_model_list)
        for entry in data["data"]:
            if isinstance(entry, dict) and entry.get("id"):
                return str(entry["id"])
        raise BackendError(f"the server at {self.base_url}/models lists no models: name one in the spec, "
                           f"e.g. 'openai:{self.base_url}#<model>'")

    # -- concurrency ---------------------------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._closed:
                raise BackendError(f"{self.id} is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_concurrency,
                                                    thread_name_prefix="prompthone-openai")
            return self._executor

    def _run_all(self, call: Callable[[_Item], _Result],
                 items: Sequence[_Item]) -> Iterator[tuple[int, _Result]]:
        """Run `call` over `items` on the shared pool; yield (index, result) as each completes.

        The pool is shared by every batch of this model, so `max_concurrency` bounds all of them together.
        Closing the generator early cancels the requests that have not started.
        """
        if not items:
            return
        pool = self._pool()
        futures: dict[Future[_Result], int] = {pool.submit(call, item): i for i, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    # -- HTTP with retries ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: _Json | None,
                 check: Callable[[Any], str | None]) -> _Json:
        """One API call, retried on transient faults; BackendError names the URL, last fault and attempts."""
        url = f"{self.base_url}/{path}"
        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._backoff,
                            retry=retry_if_exception_type(_TransientError), before_sleep=self._log_retry,
                            reraise=True)
        try:
            result: _Json = retrying(self._attempt, method, url, body, check)
        except _TransientError as exc:
            self._count("failures")
            raise BackendError(f"{method} {url} failed after {self.max_retries + 1} attempts; "
                               f"last error: {exc}") from exc
        return result

    def _attempt(self, method: str, url: str, body: _Json | None,
                 check: Callable[[Any], str | None]) -> _Json:
        self._count("requests")
        try:
            response = self._client.request(method, url, json=body)
        except httpx.TimeoutException as exc:
            self._count("timeouts")
            raise _TransientError(f"no reply within {self.timeout:g} s ({type(exc).__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            self._count("connection_errors")
            detail = f"{type(exc).__name__}: {self._redact(str(exc))}"
            raise _TransientError(f"connection error ({detail})") from exc
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {self._redact(str(exc))}"
            raise BackendError(f"{method} {url} failed: {detail}") from exc
        status = response.status_code
        if not 200 <= status < 300:
            self._count(f"http_{status}")
            message = self._redact(server_message(response))
            if status in RETRY_STATUSES:
                hint = response.headers.get("retry-after") if status in RETRY_AFTER_STATUSES else None
                raise _TransientError(f"HTTP {status}: {message}", retry_after=parse_retry_after(hint))
            raise BackendError(f"{method} {url} failed with HTTP {status}: {message}{self._hint(status)}")
        try:
            data = response.json()
        except ValueError as exc:
            self._count("malformed")
            raise _TransientError("HTTP 200 with a body that is not valid JSON") from exc
        problem = check(data)
        if problem is not None:
            self._count("malformed")
            raise _TransientError(f"HTTP 200 but {problem}")
        return cast(_Json, data)

    def _backoff(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential with equal jitter."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (state.attempt_number - 1))
        return ceiling / 2.0 + self._jitter.uniform(0.0, ceiling / 2.0)

    def _log_retry(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        exc = state.outcome.exception() if state.outcome is not None else None
        self._count("retries")
        self._count("backoff_ms", round(wait * 1000))
        logger.warning("%s: attempt %d/%d failed (%s); retrying in %.2f s", self.base_url,
                       state.attempt_number, self.max_retries + 1, exc, wait)

    def _count(self, key: str, amount: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + amount

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return (f" (check the API key in ${KEY_ENV_OVERRIDE} or ${self.api_key_env}"
                    f"{'; none is set' if not self._secret else ''})")
        if status == 404:
            return " (check that the base URL ends with /v1 and the model name is one the server serves)"
        return ""
