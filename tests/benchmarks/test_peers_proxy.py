"""The counting proxy: every system's calls are counted, capped and clamped the same way.

The upstream is the fake OpenAI server (fixed replies, scripted faults, every request recorded), so the counts the
proxy keeps can be checked exactly against what reached the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from benchmarks.peers.harness import Settings, _server
from benchmarks.peers.job import BUDGET_EXHAUSTED, is_budget_refusal
from benchmarks.peers.proxy import CountingProxy
from tests.fakes.fake_openai_server import FakeOpenAIServer, Fault

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(reply_text="fine thanks").start()
    yield server
    server.stop()


@pytest.fixture
def proxy(upstream: FakeOpenAIServer) -> Iterator[tuple[CountingProxy, str]]:
    counting = CountingProxy(upstream.base_url, api_key="sk-upstream-secret")
    with counting.serve() as url:
        yield counting, url


def _post(url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(url, json=body, timeout=10)


def test_calls_and_tokens_are_counted_per_run(proxy: tuple[CountingProxy, str],
                                              upstream: FakeOpenAIServer) -> None:
    counting, url = proxy
    a = url + counting.open_run("a", budget_calls=5, max_tokens=50)
    b = url + counting.open_run("b", budget_calls=5, max_tokens=50)
    for _ in range(3):
        assert _post(f"{a}/chat/completions", CHAT).status_code == 200
    assert _post(f"{b}/chat/completions", CHAT).status_code == 200
    assert (counting.ledger("a").calls, counting.ledger("b").calls) == (3, 1)
    assert counting.ledger("a").prompt_tokens == 9 and counting.ledger("a").completion_tokens == 6
    assert [t[1] for t in counting.ledger("a").trace] == [1, 2, 3]
    assert len(upstream.requests) == 4
    # The proxy, not the runner, holds the upstream key.
    assert all(r.headers.get("Authorization") == "Bearer sk-upstream-secret" for r in upstream.requests)


def test_calls_beyond_the_budget_are_refused_and_never_reach_the_upstream(
        proxy: tuple[CountingProxy, str], upstream: FakeOpenAIServer) -> None:
    counting, url = proxy
    base = url + counting.open_run("capped", budget_calls=2, max_tokens=50)
    codes = [_post(f"{base}/chat/completions", CHAT).status_code for _ in range(4)]
    assert codes == [200, 200, 403, 403]
    refusal = _post(f"{base}/chat/completions", CHAT).json()
    assert refusal["error"]["type"] == BUDGET_EXHAUSTED
    ledger = counting.ledger("capped")
    assert (ledger.calls, ledger.refused) == (2, 3)
    assert len(upstream.requests) == 2
    # A request for n choices costs n calls, and is refused whole if it does not fit.
    other = url + counting.open_run("n", budget_calls=3, max_tokens=50)
    assert _post(f"{other}/chat/completions", {**CHAT, "n": 2}).status_code == 200
    assert _post(f"{other}/chat/completions", {**CHAT, "n": 2}).status_code == 403
    assert counting.ledger("n").calls == 2


def test_max_tokens_is_clamped_or_set(proxy: tuple[CountingProxy, str], upstream: FakeOpenAIServer) -> None:
    counting, url = proxy
    base = url + counting.open_run("clamp", budget_calls=10, max_tokens=32)
    _post(f"{base}/chat/completions", {**CHAT, "max_tokens": 4000})
    _post(f"{base}/chat/completions", CHAT)
    _post(f"{base}/chat/completions", {**CHAT, "max_tokens": 8})
    _post(f"{base}/chat/completions", {**CHAT, "max_completion_tokens": 500})
    sent = [r.body for r in upstream.requests]
    assert [body["max_tokens"] for body in sent] == [32, 32, 8, 32]
    assert sent[3]["max_completion_tokens"] == 32
    assert counting.ledger("clamp").clamped == 3


def test_upstream_failures_are_passed_on_but_not_charged(proxy: tuple[CountingProxy, str],
                                                         upstream: FakeOpenAIServer) -> None:
    counting, url = proxy
    base = url + counting.open_run("faulty", budget_calls=2, max_tokens=16)
    upstream.script(Fault.error(500), Fault.error(400, "bad request"))
    assert _post(f"{base}/chat/completions", CHAT).status_code == 500
    assert _post(f"{base}/chat/completions", CHAT).status_code == 400  # the client's fault: charged
    assert _post(f"{base}/chat/completions", CHAT).status_code == 200
    ledger = counting.ledger("faulty")
    assert (ledger.calls, ledger.upstream_failures) == (2, 1)


def test_model_listing_is_free_and_unknown_runs_are_rejected(proxy: tuple[CountingProxy, str]) -> None:
    counting, url = proxy
    base = url + counting.open_run("listing", budget_calls=1, max_tokens=16)
    assert httpx.get(f"{base}/models", timeout=10).json()["data"][0]["id"] == "fake-model"
    assert counting.ledger("listing").calls == 0
    assert _post(f"{url}/r/nobody/v1/chat/completions", CHAT).status_code == 404
    with pytest.raises(ValueError, match="already registered"):
        counting.open_run("listing", budget_calls=1, max_tokens=16)


def test_runs_can_be_registered_and_read_over_http(proxy: tuple[CountingProxy, str]) -> None:
    _, url = proxy
    reply = _post(f"{url}/_runs", {"run_id": "remote", "budget_calls": 1, "max_tokens": 8})
    assert reply.json() == {"prefix": "/r/remote/v1"}
    _post(f"{url}/r/remote/v1/chat/completions", CHAT)
    assert httpx.get(f"{url}/_runs/remote", timeout=10).json()["calls"] == 1
    assert _post(f"{url}/_runs", {"run_id": "broken"}).status_code == 400


def test_a_budget_refusal_is_recognized_however_a_client_library_wraps_it() -> None:
    try:
        try:
            raise RuntimeError(f"Error code: 403 - {{'error': {{'type': '{BUDGET_EXHAUSTED}'}}}}")
        except RuntimeError as inner:
            raise ValueError("adapter failed") from inner
    except ValueError as outer:
        assert is_budget_refusal(outer)
    assert not is_budget_refusal(ValueError("parse error"))


def test_an_external_server_is_used_as_given_and_its_model_discovered(upstream: FakeOpenAIServer,
                                                                      tmp_path: Path) -> None:
    settings = Settings(["t"], [0], 10, [1.0], ["seed"], tmp_path, server_url=upstream.base_url + "/")
    with _server(settings) as (url, model):
        assert (url, model) == (upstream.base_url, "fake-model")
    assert not (tmp_path / "server.log").exists()  # no local server was started
