"""Fault-injection and unit tests for the OpenAI-compatible HTTP backend, against a local fake server."""

from __future__ import annotations

import gc
import logging
import math
import threading
from collections.abc import Generator, Iterator

import pytest
from tests.fakes.fake_openai_server import FakeOpenAIServer, Fault

from prompthone.errors import BackendError, ConfigError
from prompthone.models.base import GenerationRequest, Message, Model, ScoringRequest
from prompthone.models.openai_compat import OpenAICompatModel, estimated_tokens, label_logprobs, parse_spec
from prompthone.models.openai_wire import generation_body, room_for_completion, split_spec_options

SECRET = "sk-test-0123456789abcdef-SECRET"
ASK = (Message("user", "Is this great? Answer yes or no."),)


@pytest.fixture(autouse=True)
def _no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "PROMPTHONE_API_KEY", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def open_models() -> Iterator[list[OpenAICompatModel]]:
    models: list[OpenAICompatModel] = []
    yield models
    for model in models:
        model.close()


def fast_model(url: str, models: list[OpenAICompatModel], model: str | None = "fake-model",
               **options: object) -> OpenAICompatModel:
    """A client with small timeouts and backoff so every fault test stays well under a second."""
    settings: dict[str, object] = {"timeout": 0.3, "max_retries": 3, "backoff_base": 0.01,
                                   "backoff_max": 0.02}
    settings.update(options)
    client = OpenAICompatModel(url, model, **settings)  # type: ignore[arg-type]
    models.append(client)
    return client


def one_completion(model: OpenAICompatModel, request: GenerationRequest | None = None) -> str:
    results = list(model.generate([request or GenerationRequest(messages=ASK, max_tokens=8)]))
    assert [index for index, _ in results] == [0]
    return results[0][1].text


# -- plain behaviour -------------------------------------------------------------------------------

def test_generate_sends_the_request_fields_and_returns_text_and_usage(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models)
    assert isinstance(model, Model)
    [(_, completion)] = list(model.generate([GenerationRequest(messages=ASK, max_tokens=8)]))
    assert completion.text == "positive"
    assert completion.prompt_tokens == 7 and completion.completion_tokens == 1
    assert completion.finish_reason == "stop"
    body = fake_openai.requests[0].body
    assert fake_openai.requests[0].path == "/v1/chat/completions"
    assert body["model"] == "fake-model" and body["max_tokens"] == 8 and body["temperature"] == 0.0
    assert body["messages"] == [{"role": "user", "content": ASK[0].content}]
    assert "stop" not in body and "seed" not in body
    list(model.generate([GenerationRequest(messages=ASK, stop=("\n",), seed=7, temperature=0.7, top_p=0.9)]))
    body = fake_openai.requests[1].body
    assert body["stop"] == ["\n"] and body["seed"] == 7
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert model.stats["retries"] == 0 and model.stats["requests"] == 2


def test_a_prefilled_request_is_refused_before_anything_is_sent(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    """The chat API cannot continue a partial reply: the backend says so instead of answering another question."""
    model = fast_model(fake_openai.base_url, open_models)
    assert not model.capabilities.prefill
    with pytest.raises(ConfigError, match="prefill"):
        list(model.generate([GenerationRequest(messages=ASK, prefill="Because")]))
    with pytest.raises(ConfigError, match="prefill"):
        list(model.score([ScoringRequest(ASK, ("yes", "no"), prefill="So")]))
    assert fake_openai.requests == []


def test_model_is_discovered_from_the_models_endpoint(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models, model=None)
    assert model.model == "fake-model"
    assert model.id == f"openai:{fake_openai.base_url}#fake-model"
    assert fake_openai.requests[0].method == "GET" and fake_openai.requests[0].path == "/v1/models"


def test_discovery_with_no_models_is_a_clear_error(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(model_ids=()).start()
    try:
        with pytest.raises(BackendError, match="lists no models"):
            fast_model(server.base_url, open_models, model=None)
    finally:
        server.stop()


def test_id_is_stable_and_round_trips_through_from_spec(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    first = fast_model(fake_openai.base_url + "/", open_models, model="org/model-7b")
    second = OpenAICompatModel.from_spec(first.id, timeout=0.3)
    open_models.append(second)
    assert first.id == second.id == f"openai:{fake_openai.base_url}#org/model-7b"


# -- retries ---------------------------------------------------------------------------------------

def test_server_errors_are_retried_then_succeed(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel],
        caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.script(Fault.error(500), Fault.error(502), Fault.error(504))
    model = fast_model(fake_openai.base_url, open_models)
    with caplog.at_level(logging.INFO, logger="prompthone.models.openai_compat"):
        assert one_completion(model) == "positive"
    assert len(fake_openai.requests) == 4
    assert model.stats["retries"] == 3
    assert model.stats["http_500"] == model.stats["http_502"] == model.stats["http_504"] == 1
    # short waits are info (the summary counts them); a wait of a second or more would be a warning
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 3
    assert "HTTP 500" in caplog.text


def test_a_retry_that_waits_a_second_is_a_warning(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel],
        caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.script(Fault.rate_limited(retry_after="1"))
    model = fast_model(fake_openai.base_url, open_models, backoff_max=5.0)
    with caplog.at_level(logging.INFO, logger="prompthone.models.openai_compat"):
        assert one_completion(model) == "positive"
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "retrying in 1.00 s" in record.getMessage()


def test_retry_after_zero_is_honoured_over_a_long_backoff(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.rate_limited(retry_after="0"), Fault.unavailable(retry_after="0"))
    model = fast_model(fake_openai.base_url, open_models, backoff_base=30.0, backoff_max=30.0)
    assert one_completion(model) == "positive"
    # no wait at all (the backoff's own count, not the wall clock, which a busy machine stretches)
    assert model.stats["http_429"] == 1 and model.stats["http_503"] == 1 and model.stats["backoff_ms"] == 0


def test_retry_after_is_capped_at_backoff_max(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.rate_limited(retry_after="1"))
    model = fast_model(fake_openai.base_url, open_models, backoff_max=0.03)
    assert one_completion(model) == "positive"
    assert model.stats["backoff_ms"] == 30


def test_429_without_retry_after_uses_jittered_exponential_backoff(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.rate_limited(), Fault.rate_limited())
    model = fast_model(fake_openai.base_url, open_models, backoff_base=0.02, backoff_max=1.0)
    assert one_completion(model) == "positive"
    # equal jitter: attempt 1 waits in [10, 20] ms, attempt 2 in [20, 40] ms
    assert 30 <= model.stats["backoff_ms"] <= 60
    assert model.stats["retries"] == 2


def test_a_hang_past_the_timeout_is_retried(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.stall(5.0))
    model = fast_model(fake_openai.base_url, open_models, timeout=0.2)
    assert one_completion(model) == "positive"
    assert model.stats["timeouts"] == 1 and len(fake_openai.requests) == 2


def test_hangs_on_every_attempt_end_in_a_backend_error(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(*[Fault.stall(5.0)] * 2)
    model = fast_model(fake_openai.base_url, open_models, timeout=0.2, max_retries=1)
    with pytest.raises(BackendError) as caught:
        one_completion(model)
    message = str(caught.value)
    assert f"{fake_openai.base_url}/chat/completions" in message
    assert "2 attempts" in message and "no reply within 0.2 s" in message
    assert model.stats["failures"] == 1 and model.stats["timeouts"] == 2


@pytest.mark.parametrize("fault", [Fault.malformed_json(), Fault.no_choices(), Fault.dropped()],
                         ids=["malformed-json", "no-choices", "dropped-connection"])
def test_unusable_200_replies_and_dropped_connections_are_retried(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel], fault: Fault) -> None:
    fake_openai.script(fault, fault)
    model = fast_model(fake_openai.base_url, open_models)
    assert one_completion(model) == "positive"
    assert model.stats["retries"] == 2 and len(fake_openai.requests) == 3


def test_malformed_replies_on_every_attempt_end_in_a_backend_error(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(*[Fault.malformed_json()] * 4)
    model = fast_model(fake_openai.base_url, open_models)
    with pytest.raises(BackendError, match=r"failed after 4 attempts; last error: HTTP 200 .*not valid JSON"):
        one_completion(model)


def test_401_is_not_retried_and_says_to_check_the_key(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.unauthorized())
    model = fast_model(fake_openai.base_url, open_models)
    with pytest.raises(BackendError) as caught:
        one_completion(model)
    message = str(caught.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and "OPENAI_API_KEY" in message
    assert len(fake_openai.requests) == 1 and model.stats["retries"] == 0


def test_other_4xx_are_not_retried(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    fake_openai.script(Fault.error(400, "max_tokens is too large"))
    model = fast_model(fake_openai.base_url, open_models)
    with pytest.raises(BackendError, match="HTTP 400: max_tokens is too large"):
        one_completion(model)
    assert len(fake_openai.requests) == 1


VLLM_OLD = ("This model's maximum context length is 4096 tokens. However, you requested 5096 tokens (1000 in the "
            "messages, 4096 in the completion). Please reduce the length of the messages or completion.")
VLLM_NEW = ("'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context length is 4096 "
            "tokens and your request has 1000 input tokens (4096 > 4096 - 1000).")
OPENAI_CAP = ("max_tokens is too large: 20000. This model supports at most 16384 completion tokens, whereas you "
              "provided 20000.")


@pytest.mark.parametrize(("message", "room"), [(VLLM_OLD, 3096), (VLLM_NEW, 3096), (OPENAI_CAP, 16384),
                                               ("max_tokens is too large", None), ("injected fault", None)])
def test_context_length_refusals_name_the_room_left(message: str, room: int | None) -> None:
    assert room_for_completion(f"POST http://h/v1/chat/completions failed with HTTP 400: {message}") == room


def test_a_reply_too_long_for_the_servers_window_is_asked_again_at_the_room_left(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    """max_tokens is a ceiling, as on the embedded backends: GEPA's 4096-token reflections must not fail on a
    server whose window is 4096 tokens."""
    fake_openai.script(Fault.error(400, VLLM_OLD))
    model = fast_model(fake_openai.base_url, open_models)
    assert one_completion(model, GenerationRequest(messages=ASK, max_tokens=4096)) == "positive"
    assert [r.body["max_tokens"] for r in fake_openai.requests] == [4096, 3096]
    assert model.stats["max_tokens_capped"] == 1 and model.stats["retries"] == 0


def test_a_prompt_that_fills_the_window_is_not_asked_again(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    full = VLLM_OLD.replace("1000 in the messages", "4096 in the messages")
    fake_openai.script(Fault.error(400, full))
    model = fast_model(fake_openai.base_url, open_models)
    with pytest.raises(BackendError, match="maximum context length is 4096 tokens"):
        one_completion(model, GenerationRequest(messages=ASK, max_tokens=64))
    assert len(fake_openai.requests) == 1


def test_nothing_listening_ends_in_a_backend_error_after_retries(
        dead_base_url: str, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(dead_base_url, open_models, max_retries=2)
    with pytest.raises(BackendError) as caught:
        one_completion(model)
    message = str(caught.value)
    assert dead_base_url in message and "3 attempts" in message and "connection error" in message
    assert model.stats["connection_errors"] == 3 and model.stats["retries"] == 2


def test_discovery_against_a_dead_port_fails_cleanly(dead_base_url: str) -> None:
    with pytest.raises(BackendError, match=r"GET .*/models failed after 2 attempts"):
        OpenAICompatModel(dead_base_url, None, timeout=0.3, max_retries=1, backoff_base=0.01,
                          backoff_max=0.02)


# -- the API key ---------------------------------------------------------------------------------------------

def test_api_key_is_sent_as_bearer_and_never_shown(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = fast_model(fake_openai.base_url, open_models, model=None)
    assert all(r.headers.get("Authorization") == f"Bearer {SECRET}" for r in fake_openai.requests)
    for shown in (repr(model), str(model), model.id):
        assert SECRET not in shown
    # a server that echoes the key in its messages: neither logs nor exceptions repeat it
    fake_openai.script(Fault.error(500, f"upstream rejected {SECRET}"),
                       Fault.unauthorized(f"bad key {SECRET}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as caught:
        one_completion(model)
    assert "bad key ***" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert SECRET not in caplog.text and "upstream rejected ***" in caplog.text
    assert fake_openai.requests[-1].headers.get("Authorization") == f"Bearer {SECRET}"


def test_prompthone_key_wins_and_the_env_name_is_configurable(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "from-my-key")
    one_completion(fast_model(fake_openai.base_url, open_models, api_key_env="MY_KEY"))
    monkeypatch.setenv("PROMPTHONE_API_KEY", "from-prompthone")
    one_completion(fast_model(fake_openai.base_url, open_models, api_key_env="MY_KEY"))
    assert [r.headers.get("Authorization") for r in fake_openai.requests] == [
        "Bearer from-my-key", "Bearer from-prompthone"]


def test_no_key_sends_no_authorization_header(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    one_completion(fast_model(fake_openai.base_url, open_models))
    assert "Authorization" not in fake_openai.requests[0].headers


# -- spec parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("openai:http://127.0.0.1:8000/v1/qwen2.5-7b", ("http://127.0.0.1:8000/v1", "qwen2.5-7b")),
    ("openai:http://host:8000/v1", ("http://host:8000/v1", None)),
    ("openai:http://host:8000/v1/", ("http://host:8000/v1", None)),
    ("openai:https://api.openai.com/v1/gpt-4o-mini", ("https://api.openai.com/v1", "gpt-4o-mini")),
    ("openai:http://h:1/v1/Qwen/Qwen2.5-7B-Instruct", ("http://h:1/v1", "Qwen/Qwen2.5-7B-Instruct")),
    ("openai:http://h:1/v1#org/m", ("http://h:1/v1", "org/m")),
    ("openai:http://h:11434/api/v1/llama3#llama3:8b", ("http://h:11434/api/v1/llama3", "llama3:8b")),
    ("openai:http://h:1/prefix/v1/m", ("http://h:1/prefix/v1", "m")),
    ("openai:http://h:1/v1#", ("http://h:1/v1", None)),
])
def test_parse_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["local", "openai:", "openai:127.0.0.1:8000/v1", "openai:ftp://h/v1", "http://h/v1"])
def test_parse_spec_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_spec(spec)


# -- label scoring ---------------------------------------------------------------------------------

def test_label_logprobs_sums_surface_variants_and_floors_unseen_labels() -> None:
    top = {" positive": -0.2, "Positive": -2.5, " negative": -1.9, " neutral": -4.0, "\n": -5.0}
    pos, neg, mixed = label_logprobs(top, ["positive", "Negative ", "mixed"])
    assert pos == pytest.approx(math.log(math.exp(-0.2) + math.exp(-2.5)))
    assert neg == pytest.approx(-1.9)
    assert mixed < -5.0 and math.isfinite(mixed)


def test_label_logprobs_drops_ambiguous_prefixes_and_counts_partial_tokens() -> None:
    top = {"y": -1.0, "ye": -1.5, "yes": -2.0, "yell": -2.2, "n": -3.0}
    yes, yellow, no = label_logprobs(top, ["yes", "yellow", "no"])
    assert yes == pytest.approx(-2.0)           # 'y' and 'ye' are prefixes of both yes and yellow: dropped
    assert yellow == pytest.approx(-2.2)
    assert no == pytest.approx(-3.0)            # a partial first token still counts


def test_label_logprobs_floor_is_below_the_unlisted_mass() -> None:
    [only, unseen] = label_logprobs({"A": math.log(0.999)}, ["A", "B"])
    assert only == pytest.approx(math.log(0.999))
    assert unseen == pytest.approx(math.log(0.001) - math.log(2), rel=1e-3)


def test_labels_with_the_same_normalized_form_share_their_tokens() -> None:
    assert label_logprobs({"Yes": -0.5}, ["yes", "Yes"]) == (-0.5, -0.5)


def test_score_asks_for_one_token_with_top_logprobs(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models, top_logprobs=5)
    assert model.capabilities.score
    request = ScoringRequest(messages=ASK, continuations=("positive", "negative"))
    [(index, scores)] = list(model.score([request]))
    assert index == 0 and scores.prompt_tokens == 7
    assert scores.logprobs == pytest.approx((math.log(math.exp(-0.2) + math.exp(-2.5)), -1.9))
    body = fake_openai.requests[0].body
    assert body["max_tokens"] == 1 and body["temperature"] == 0.0
    assert body["logprobs"] is True and body["top_logprobs"] == 5


def test_a_server_without_logprobs_gets_a_clear_error(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(top_logprobs=None).start()
    try:
        model = fast_model(server.base_url, open_models)
        with pytest.raises(BackendError, match=r"does not return logprobs.*--scoring generate"):
            list(model.score([ScoringRequest(messages=ASK, continuations=("yes", "no"))]))
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_logprobs_false_turns_scoring_off(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models, logprobs=False, max_concurrency=4)
    assert not model.capabilities.score and model.capabilities.max_concurrency == 4
    assert not model.capabilities.white_box and model.capabilities.generate
    with pytest.raises(BackendError, match="logprobs=False"):
        model.score([ScoringRequest(messages=ASK, continuations=("yes", "no"))])


# -- concurrency -----------------------------------------------------------------------------------

def _requests(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(messages=(Message("user", f"question {i}"),), max_tokens=4) for i in range(n)]


def test_concurrency_is_bounded_by_max_concurrency(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(gate=3).start()  # requests wait until 3 are in flight: the bound is reached
    try:
        model = fast_model(server.base_url, open_models, max_concurrency=3)
        indexes = sorted(index for index, _ in model.generate(_requests(12)))
        assert indexes == list(range(12))
        assert server.max_in_flight == 3
    finally:
        server.stop()


def test_the_bound_is_shared_by_batches_running_at_once(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(gate=2, delay=0.03).start()
    try:
        model = fast_model(server.base_url, open_models, max_concurrency=2)
        counts: list[int] = []
        threads = [threading.Thread(target=lambda: counts.append(len(list(model.generate(_requests(6))))))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counts == [6, 6, 6] and server.max_in_flight == 2  # three batches, one bound
    finally:
        server.stop()


def test_closing_the_generator_cancels_pending_requests(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(delay=0.03).start()
    try:
        model = fast_model(server.base_url, open_models, max_concurrency=1)
        results = model.generate(_requests(20))
        assert isinstance(results, Generator)
        next(results)
        results.close()
        model.close()  # waits for the one request that may still be running
        assert len(server.requests) <= 3
    finally:
        server.stop()


def test_a_failure_in_a_batch_raises_and_cancels_the_rest(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(delay=0.02).start()
    try:
        server.script(Fault.unauthorized())
        model = fast_model(server.base_url, open_models, max_concurrency=1)
        with pytest.raises(BackendError, match="HTTP 401"):
            list(model.generate(_requests(20)))
        model.close()
        assert len(server.requests) <= 3
    finally:
        server.stop()


def test_close_is_idempotent_and_a_closed_model_refuses_work(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models)
    model.close()
    model.close()
    with pytest.raises(BackendError, match="closed"):
        list(model.generate(_requests(1)))


# -- many in flight, rate limits, Retry-After for everyone ---------------------------------------------------

def test_64_requests_are_kept_in_flight_on_one_thread(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(gate=64).start()  # every request waits until 64 are in flight at once
    try:
        model = fast_model(server.base_url, open_models, max_concurrency=64, timeout=10.0)
        threads_before = threading.active_count()
        indexes = sorted(index for index, _ in model.generate(_requests(192)))
        assert indexes == list(range(192))
        assert server.max_in_flight == 64
        # the event loop's thread and a few of the resolver's, not one per request in flight
        assert threading.active_count() < threads_before + 16
    finally:
        server.stop()


def _most_in_any_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start < seconds) for i, start in enumerate(times))


def test_requests_per_second_limits_what_reaches_the_server(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer().start()
    try:
        model = fast_model(server.base_url, open_models, max_concurrency=16, requests_per_second=20.0)
        assert len(list(model.generate(_requests(50)))) == 50
        arrivals = [r.at for r in server.requests]
        # evenly spaced, one every 50 ms: no burst
        assert _most_in_any_window(arrivals, 1.0) <= 21
        assert max(arrivals) - min(arrivals) >= 49 * 0.05 * 0.9
    finally:
        server.stop()


def test_tokens_per_minute_takes_the_estimate_of_each_request(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    model = fast_model(fake_openai.base_url, open_models, tokens_per_minute=600.0)  # a bucket of 100, 10/s
    request = GenerationRequest(messages=(Message("user", "x" * 200),), max_tokens=9)
    assert estimated_tokens(generation_body("m", request)) == 200 // 4 + 9 + 1
    one_completion(model, request)
    limiter = model._token_limit
    assert limiter is not None and limiter.has_capacity(30) and not limiter.has_capacity(45)


def test_a_retry_after_pauses_every_request_of_the_model(open_models: list[OpenAICompatModel]) -> None:
    server = FakeOpenAIServer(delay=0.02).start()
    try:
        server.script(Fault.rate_limited(retry_after="0.5"))
        model = fast_model(server.base_url, open_models, max_concurrency=1, backoff_max=2.0)
        assert len(list(model.generate(_requests(4)))) == 4
        [limited, *rest] = server.requests
        assert len(rest) == 4 and min(r.at for r in rest) - limited.at >= 0.45
        assert model.stats["http_429"] == 1 and model.stats["retries"] == 1
    finally:
        server.stop()


def test_spec_options_set_how_requests_are_sent_but_not_the_id(
        fake_openai: FakeOpenAIServer, open_models: list[OpenAICompatModel]) -> None:
    spec = f"openai:{fake_openai.base_url}#fake-model?max_in_flight=3&requests_per_second=50&timeout=2.5"
    model = OpenAICompatModel.from_spec(spec)
    open_models.append(model)
    assert model.id == f"openai:{fake_openai.base_url}#fake-model"
    assert (model.capabilities.max_concurrency, model.requests_per_second, model.timeout) == (3, 50.0, 2.5)
    assert "requests_per_second=50" in repr(model)
    assert split_spec_options("openai:http://h/v1#m?max_retries=0") == ("openai:http://h/v1#m", {"max_retries": 0})


@pytest.mark.parametrize("query, message", [
    ("speed=fast", "not one of max_in_flight=<int>"),
    ("max_in_flight", "not one of"),
    ("max_in_flight=many", "max_in_flight='many' is not a valid int"),
    ("requests_per_second=0", "must be positive"),
    ("max_retries=-1", "must be positive"),
])
def test_bad_spec_options_are_clear_errors(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OpenAICompatModel.from_spec(f"openai:http://127.0.0.1:9/v1#m?{query}")


def test_a_model_never_closed_shuts_down_when_collected(fake_openai: FakeOpenAIServer) -> None:
    """The CLI keeps loaded models to the end: the finalizer closes the session and stops the loop thread anyway."""
    model = OpenAICompatModel(fake_openai.base_url, "fake-model", timeout=2.0)
    assert one_completion(model) == "positive"
    thread, session = model._runner._thread, model._transport.session
    assert thread.is_alive() and session is not None and not session.closed
    del model
    gc.collect()
    assert not thread.is_alive() and session.closed
