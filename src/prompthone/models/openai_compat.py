"""A `Model` backend for any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI).

Requests go through one shared, thread-safe `httpx.Client`; transient faults (429, 5xx, connection errors,
timeouts, malformed 200 replies) are retried by `tenacity` with exponential backoff and jitter, honouring
`Retry-After`. Batches run on a bounded thread pool and yield results as they complete.

The API key is read from the environment once, kept in memory only and sent only as an `Authorization`
header: it never appears in `id`, `repr`, log lines or exception messages.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    Message,
    ScoringRequest,
)

logger = logging.getLogger(__name__)

SPEC_PREFIX = "openai:"
KEY_ENV_OVERRIDE = "PROMPTHONE_API_KEY"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
_Json = dict[str, Any]


class _TransientError(Exception):
    """One failed attempt that is worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split `openai:<url>[/<model>|#<model>]` into (base URL, model or None), so specs stay one string.

    `openai:http://h:8000/v1/qwen2.5-7b` -> ('http://h:8000/v1', 'qwen2.5-7b'): the model is everything
    after the first '/v1/' segment (it may itself contain '/'). `openai:http://h:8000/v1#org/model` names
    it explicitly. Without a model, the backend asks the server's `/models` endpoint.
    """
    if not spec.startswith(SPEC_PREFIX):
        raise ConfigError(f"not an OpenAI-compatible model spec: {spec!r} "
                          "(expected 'openai:<url>[#<model>]')")
    rest = spec[len(SPEC_PREFIX):].strip()
    model: str | None = None
    if "#" in rest:
        rest, model = rest.split("#", 1)
    elif "/v1/" in rest:
        cut = rest.index("/v1/")
        rest, model = rest[:cut + 3], rest[cut + 4:]
    url = rest.rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ConfigError(f"model spec {spec!r} needs an http(s) URL, e.g. 'openai:http://127.0.0.1:8000/v1'")
    model = (model or "").strip().strip("/") or None
    return url, model


def label_logprobs(top: Mapping[str, float], continuations: Sequence[str]) -> tuple[float, ...]:
    """log P(continuation) for each continuation from the first generated position's top tokens.

    A token counts for continuation `c` when its normalized text (`strip().casefold()`, non-empty) is a
    prefix of `c`'s normalized text and of no other requested continuation: that sums the surface variants
    ('Yes', ' yes', 'Y', ...) and drops tokens that cannot tell two labels apart. Continuations that share a
    normalized form share their tokens. A continuation with no listed token gets a floor below everything
    listed: `min(smallest listed logprob, log(unlisted mass)) - log(2)`. Every unlisted token is at most as
    likely as the smallest listed one and all of them together hold at most the unlisted mass, so the true
    value is (usually) lower still; the floor keeps every seen label ranked above every unseen one, and
    stays finite.

    Limit: only the first token is visible, so continuations whose first tokens coincide (e.g. 'New York'
    and 'New Delhi') cannot be separated and score the same floor.
    """
    keys = [c.strip().casefold() for c in continuations]
    distinct = sorted(set(keys))
    mass: dict[str, float] = dict.fromkeys(distinct, 0.0)
    for token, logprob in top.items():
        text = token.strip().casefold()
        if not text:
            continue
        matches = [key for key in distinct if key.startswith(text)]
        if len(matches) == 1:
            mass[matches[0]] += math.exp(logprob)
    listed = [lp for lp in top.values() if math.isfinite(lp)]
    floor_at = min(listed) if listed else math.log(1e-10)
    unlisted = 1.0 - sum(math.exp(lp) for lp in listed)
    if unlisted > 0.0:
        floor_at = min(floor_at, math.log(unlisted))
    floor = floor_at - math.log(2.0)
    return tuple(math.log(mass[key]) if mass[key] > 0.0 else floor for key in keys)


def _first_position_top(choice: _Json) -> dict[str, float] | None:
    """Token -> logprob at the first generated position, from the chat or legacy completions format."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        top: dict[str, float] = {}
        entries = list(first.get("top_logprobs") or [])
        if "token" in first and "logprob" in first:
            entries.append(first)
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("logprob"), int | float):
                token = str(entry.get("token", ""))
                top[token] = max(float(entry["logprob"]), top.get(token, -math.inf))
        return top or None
    legacy = logprobs.get("top_logprobs")
    if isinstance(legacy, list) and legacy and isinstance(legacy[0], dict):
        return {str(t): float(lp) for t, lp in legacy[0].items() if isinstance(lp, int | float)} or None
    return None


def _has_choices(data: Any) -> str | None:
    """Why a 200 chat reply is unusable (retried as a transient fault), or None when it has choices."""
    if not isinstance(data, dict):
        return "reply is not a JSON object"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "reply has no 'choices'"
    return None


def _has_model_list(data: Any) -> str | None:
    """Why a 200 /models reply is unusable, or None when it has a `data` list."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return "reply has no 'data' list"
    return None


def _server_message(response: httpx.Response) -> str:
    """The server's own error message (OpenAI `{"error": {"message"}}`, FastAPI `detail`, or the text)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if data.get("detail"):
            return str(data["detail"])
        if data.get("message"):
            return str(data["message"])
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase or "no message"


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _messages_json(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _usage(data: _Json, field: str) -> int:
    usage = data.get("usage")
    value = usage.get(field) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, int | float) else 0


class OpenAICompatModel:
    """A model served over the OpenAI chat-completions API: generation, plus label scoring from logprobs.

    >>> model = OpenAICompatModel.from_spec("openai:http://127.0.0.1:8000/v1/qwen2.5-7b")  # doctest: +SKIP

    Scoring reads the top logprobs of the first generated token only (see `label_logprobs`): labels whose
    first tokens coincide cannot be separated by this backend. Pass `logprobs=False` (`--no-logprobs`) for
    servers that do not return logprobs; `capabilities.score` is then false.

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
        self.base_url = base_url.rstrip("/")
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
            headers=headers, timeout=httpx.Timeout(timeout),
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
        return self._run_all(self._generate_one, requests)

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        """Yield (index, label log-probabilities) from one 1-token, top-logprobs completion per request."""
        if not self.logprobs:
            raise BackendError(f"{self.id} was created with logprobs=False and cannot score continuations")
        return self._run_all(self._score_one, requests)

    def close(self) -> None:
        """Cancel queued requests, wait for running ones and close the HTTP connections."""
        with self._executor_lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- one request each ----------------------------------------------------------------------------------

    def _generate_one(self, request: GenerationRequest) -> Completion:
        body: _Json = {"model": self.model, "messages": _messages_json(request.messages),
                       "max_tokens": request.max_tokens, "temperature": request.temperature,
                       "top_p": request.top_p}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        data = self._request("POST", "chat/completions", body, _has_choices)
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        return Completion(text=str(text or ""), prompt_tokens=_usage(data, "prompt_tokens"),
                          completion_tokens=_usage(data, "completion_tokens"),
                          finish_reason=choice.get("finish_reason"))

    def _score_one(self, request: ScoringRequest) -> ContinuationScores:
        body: _Json = {"model": self.model, "messages": _messages_json(request.messages), "max_tokens": 1,
                       "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs}
        data = self._request("POST", "chat/completions", body, _has_choices)
        top = _first_position_top(data["choices"][0])
        if top is None:
            raise BackendError(
                f"the server at {self.base_url} (model {self.model!r}) does not return logprobs, so it "
                "cannot score labels: use logprobs=False (`--no-logprobs`) to score by generating answers")
        return ContinuationScores(logprobs=label_logprobs(top, request.continuations),
                                  prompt_tokens=_usage(data, "prompt_tokens"))

    def _discover_model(self) -> str:
        data = self._request("GET", "models", None, _has_model_list)
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
            message = self._redact(_server_message(response))
            if status in RETRY_STATUSES:
                hint = response.headers.get("retry-after") if status in RETRY_AFTER_STATUSES else None
                raise _TransientError(f"HTTP {status}: {message}", retry_after=_parse_retry_after(hint))
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
