"""The OpenAI wire format, parsed: model specs, replies, logprobs, errors (pure functions, unit-tested).

Kept apart from `openai_compat` (transport, retries, concurrency) so each has one job.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.errors import ConfigError
from prompthone.models.base import GenerationRequest, Message, ScoringRequest

SPEC_PREFIX = "openai:"
_Json = dict[str, Any]


#: Settings a spec may carry after `?` (they change how requests are sent, never what comes back, so they stay out
#: of the model id and the cache keys), with the type each value is read as.
SPEC_OPTIONS: dict[str, type] = {"max_in_flight": int, "requests_per_second": float, "tokens_per_minute": float,
                                 "timeout": float, "max_retries": int, "backoff_base": float, "backoff_max": float}


def split_spec_options(spec: str) -> tuple[str, dict[str, Any]]:
    """`openai:<url>[#model]?max_in_flight=64&requests_per_second=20` -> (the spec without `?...`, its options).

    Options ride in the spec so that every place a model is rebuilt from its spec (a resumed run, a Ray worker,
    a study's arms) sends requests the same way without extra plumbing. Unknown names and bad values are a
    ConfigError that lists the known ones.
    """
    if "?" not in spec:
        return spec, {}
    base, query = spec.rsplit("?", 1)
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        name, sep, raw = part.partition("=")
        kind = SPEC_OPTIONS.get(name.strip())
        if kind is None or not sep:
            raise ConfigError(f"model spec option {part!r} is not one of "
                              f"{', '.join(f'{n}=<{t.__name__}>' for n, t in SPEC_OPTIONS.items())}")
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ConfigError(f"model spec option {name.strip()}={raw!r} is not a valid {kind.__name__}") from None
        if value < 0 or (value == 0 and name.strip() != "max_retries"):
            raise ConfigError(f"model spec option {name.strip()} must be positive, got {raw!r}")
        options[name.strip()] = value
    return base, options


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


@dataclass(frozen=True)
class OpenAISpec:
    """An `openai:` spec, parsed: the base URL (any `user:password@` still in it: the backend takes it out), the model
    (None: ask the server's `/models`) and the `?` options, as (name, value) pairs so the value stays hashable."""

    base_url: str
    model: str | None = None
    options: tuple[tuple[str, int | float], ...] = ()

    def keywords(self) -> dict[str, Any]:
        """The options as `OpenAICompatModel` keywords: `max_in_flight` is its `max_concurrency`."""
        return {"max_concurrency" if name == "max_in_flight" else name: value for name, value in self.options}


def parse_openai_spec(spec: str) -> OpenAISpec:
    """`openai:<url>[/<model>|#<model>][?option=value&...]`, parsed once (options first, then URL and model)."""
    rest, options = split_spec_options(spec)
    base_url, model = parse_spec(rest)
    return OpenAISpec(base_url, model, tuple(options.items()))


def mask_credentials(spec: str) -> str:
    """A model spec with any `user:password@` in its URL replaced by `***@` (for what prompthone writes down)."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", spec)


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


def first_position_top(choice: _Json) -> dict[str, float] | None:
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


def has_choices(data: Any) -> str | None:
    """Why a 200 chat reply is unusable (retried as a transient fault), or None when it has choices."""
    if not isinstance(data, dict):
        return "reply is not a JSON object"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "reply has no 'choices'"
    return None


def has_model_list(data: Any) -> str | None:
    """Why a 200 /models reply is unusable, or None when it has a `data` list."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return "reply has no 'data' list"
    return None


def server_message(body: bytes, reason: str = "") -> str:
    """The server's own error message (OpenAI `{"error": {"message"}}`, FastAPI `detail`, or the text)."""
    try:
        data = json.loads(body)
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
    text = body.decode("utf-8", errors="replace").strip()
    return text[:300] if text else reason or "no message"


def parse_retry_after(value: str | None) -> float | None:
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


def generation_body(model: str, request: GenerationRequest) -> _Json:
    """The chat-completions request body for one generation."""
    body: _Json = {"model": model, "messages": messages_json(request.messages), "max_tokens": request.max_tokens,
                   "temperature": request.temperature, "top_p": request.top_p}
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def scoring_body(model: str, request: ScoringRequest, top_logprobs: int) -> _Json:
    """The request body that scores labels: one greedy token with its `top_logprobs` alternatives."""
    return {"model": model, "messages": messages_json(request.messages), "max_tokens": 1, "temperature": 0.0,
            "logprobs": True, "top_logprobs": top_logprobs}


def messages_json(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def usage_tokens(data: _Json, field: str) -> int:
    usage = data.get("usage")
    value = usage.get(field) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, int | float) else 0


#: How servers word a request whose prompt + max_tokens does not fit (vLLM and OpenAI's older wording, vLLM's newer
#: one, then OpenAI's cap on completion tokens): the window and the prompt's tokens, or the completion cap alone.
_WINDOW_AND_PROMPT = (
    re.compile(r"maximum context length is (\d+) tokens.*?\((\d+) in the messages", re.S),
    re.compile(r"maximum context length is (\d+) tokens and your request has (\d+) input tokens", re.S),
)
_COMPLETION_CAP = re.compile(r"supports at most (\d+) completion tokens")


def room_for_completion(message: str) -> int | None:
    """The largest max_tokens a server's context-length refusal says would fit, or None when `message` is not one.

    The embedded backends treat max_tokens as a ceiling up to the end of the window; servers refuse the request
    instead (HTTP 400), so a method asking for long replies (GEPA's reflections) would fail on a server where it
    works in-process. The refusal names the window and the prompt's size, which is all a retry needs.
    """
    for pattern in _WINDOW_AND_PROMPT:
        found = pattern.search(message)
        if found:
            return int(found.group(1)) - int(found.group(2))
    found = _COMPLETION_CAP.search(message)
    return int(found.group(1)) if found else None
