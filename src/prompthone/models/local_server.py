"""Serve a GGUF model (the embedded SmolLM2 by default) over an OpenAI-compatible HTTP API on 127.0.0.1.

Why: other tools (DSPy, TextGrad, promptolution, a user's own scripts) speak the OpenAI protocol, not prompthone's
in-process backend. Pointing them and prompthone at one local `llama_cpp.server` is how the peer benchmark gives
every system the identical model. The server is a child process so that it can be killed cleanly and its log kept.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from prompthone.errors import BackendError
from prompthone.models.threads import requested_threads

DEFAULT_ALIAS = "smollm2-135m"
STARTUP_DEADLINE_S = 180.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path,
                     deadline_s: float = STARTUP_DEADLINE_S) -> None:
    """Poll GET {base_url}/models until it answers 200; fail early, with the log's tail, if the process exits."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        try:
            process.wait(timeout=0.2)  # the pause between probes, which also notices a crashed server
        except subprocess.TimeoutExpired:
            continue
        raise BackendError(f"llama_cpp.server exited with {process.returncode}:\n{_tail(log)}")
    raise BackendError(f"llama_cpp.server not ready after {deadline_s:.0f} s:\n{_tail(log)}")


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


@contextlib.contextmanager
def serve_gguf(log: Path, gguf: Path | None = None, *, alias: str = DEFAULT_ALIAS, port: int | None = None,
               n_ctx: int = 4096, n_threads: int | None = None) -> Iterator[str]:
    """Run `python -m llama_cpp.server` on `gguf` (default: the embedded model); yield its base URL (…/v1).

    `llama_cpp.server` turns `logits_all` on by default, which its chat endpoint needs to return logprobs, so
    label scoring by log-probabilities works through it. The server is terminated (then killed) on exit.
    """
    if gguf is None:
        from prompthone.models.embedded import embedded_gguf_path

        gguf = embedded_gguf_path()
    port = port or free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    if count := requested_threads(n_threads):
        command += ["--n_threads", str(count)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            wait_until_ready(process, base_url, log)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
