"""The embedded Qwen2.5-Coder models on llama.cpp, for real: assembled from their wheels, built from the spec, scoring
two labels and generating. One short test per model (the 1.5B loads in a few seconds on 2 cores).

Without the model's extra the test is skipped, except with CI=true, where a missing extra is a failure: CI installs
every extra, so a skip there would hide a broken install.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from prompthone.errors import ConfigError
from prompthone.models.base import GenerationRequest, Message, ScoringRequest
from prompthone.models.embedded import embedded_model, is_installed

pytestmark = pytest.mark.e2e

INSTRUCTION = "Classify the sentiment of the review. Answer with one word: positive or negative."


@pytest.fixture(scope="module")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for this module's assembled models (assembled once per session, never the user's)."""
    return tmp_path_factory.mktemp("embedded-models")


def _load(spec: str, models_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    model_row = embedded_model(spec)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python is not installed (prompthone[local])")
    if not is_installed(model_row):
        pytest.skip(f"{model_row.name} is not installed: {model_row.install_hint}")
    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(models_cache))
    from prompthone.models.registry import make_model

    try:
        return make_model(spec, threads=os.cpu_count())
    except ConfigError as exc:  # pragma: no cover - a damaged install fails, it is never skipped
        pytest.fail(str(exc))


@pytest.mark.parametrize("spec", ["qwen-0.5b", "qwen-1.5b"])
def test_the_qwen_model_scores_labels_and_generates(spec: str, models_cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model_row = embedded_model(spec)
    model = _load(spec, models_cache, monkeypatch)
    try:
        assert model.name == model_row.name
        assert Path(model.path).parent == models_cache / "models" / (model_row.sha256 or "")[:16]
        text, _ = model.render_chat((Message("user", "hi"),))
        assert text.rstrip().endswith("<|im_start|>assistant")  # Qwen's own ChatML template, from the GGUF
        reviews = ("I absolutely love this, best purchase ever!", "Terrible. It broke after one day.")
        scored = [s.logprobs for _, s in model.score(
            [ScoringRequest((Message("user", f"{INSTRUCTION}\n\nInput: {r}\nAnswer:"),), ("positive", "negative"))
             for r in reviews])]
        for logprobs in scored:
            assert all(math.isfinite(x) and x <= 0.0 for x in logprobs)
            assert sum(math.exp(x) for x in logprobs) <= 1.0 + 1e-6
        assert scored[0][0] > scored[0][1] and scored[1][1] > scored[1][0]
        reply = next(model.generate([GenerationRequest(
            (Message("user", "Write one short sentence about the sea."),), max_tokens=8)]))[1]
        assert reply.text.strip() and 0 < reply.completion_tokens <= 8
    finally:
        model.close()


def test_a_reply_depends_on_its_request_alone_not_on_what_the_model_evaluated_before(
        models_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before prompts were decoded in chunks aligned to absolute positions, the 1.5B's log-probs after a prompt it had
    # just evaluated (an exact cache hit, its last 2 tokens decoded again as a batch of 2) differed from a fresh
    # evaluation by up to 0.58, so a sampled meta call gave another instruction after a resume.
    model = _load("qwen-1.5b", models_cache, monkeypatch)
    history = "".join(f"\ntext:\nClassify review {i} and answer positive or negative.\nscore:\n{20 + i}\n"
                      for i in range(12))

    def ask(tail: str) -> tuple[Message, ...]:
        return (Message("user", f"Earlier instructions and their scores:{history}\n{tail}"),)

    other, mine = ask("Write a new instruction for short reviews."), ask("Write a better instruction, one line.")
    labels = ("positive", "negative")
    try:
        def score(messages: tuple[Message, ...]) -> tuple[float, ...]:
            return next(model.score([ScoringRequest(messages, labels)]))[1].logprobs

        def reply(messages: tuple[Message, ...]) -> str:
            request = GenerationRequest(messages, max_tokens=24, temperature=1.0, seed=11)
            return next(model.generate([request]))[1].text

        after_other = (score(other), score(mine))[1]
        after_itself = score(mine)  # an exact cache hit
        assert after_itself == after_other
        texts = [reply(other), reply(mine), reply(mine), reply(ask("Something else entirely.")), reply(mine)]
        assert texts[1] == texts[2] == texts[4]
    finally:
        model.close()
