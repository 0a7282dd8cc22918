"""Fixtures for model backend tests: a fake OpenAI-compatible server, a port where nothing listens, and a real
llama_cpp.server on the embedded model (one per test module that asks for it)."""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests.fakes` must import under plain `pytest` too, not only `python -m pytest`
    sys.path.insert(0, _ROOT)

from tests.fakes.fake_openai_server import FakeOpenAIServer  # noqa: E402


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started fake server (fixed reply, empty fault script); stopped after the test."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dead_base_url() -> str:
    """A base URL on 127.0.0.1 whose port had a socket a moment ago and now has no listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


#: the model name the real server answers to
SERVER_ALIAS = "smollm2-135m"


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """Base URL of a llama_cpp.server serving the embedded model; terminated after the module's tests."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (prompthone[local])")
    from prompthone.models.local_server import serve_gguf

    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp, \
            serve_gguf(Path(tmp) / "server.log", alias=SERVER_ALIAS, n_ctx=2048) as base_url:
        yield base_url
