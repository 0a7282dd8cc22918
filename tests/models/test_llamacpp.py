"""The embedded llama.cpp backend on the real SmolLM2 model: chat template, generation, label scoring."""

from __future__ import annotations

import math

import pytest

from prompthone.models.base import GenerationRequest, Message, ScoringRequest

pytestmark = pytest.mark.e2e

INSTRUCTION = "Classify the sentiment of the review. Answer with one word: positive or negative."


def _msgs(review: str) -> tuple[Message, ...]:
    return (Message("user", f"{INSTRUCTION}\n\nInput: {review}\nAnswer:"),)


def test_uses_the_models_own_chat_template(embedded_model) -> None:
    text, stops = embedded_model.render_chat(_msgs("fine"))
    assert text.startswith("<|im_start|>system\n")  # SmolLM2's template adds its default system prompt
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_end|>" in stops or not stops


def test_greedy_generation_is_deterministic(embedded_model) -> None:
    req = GenerationRequest(_msgs("I love it, best purchase ever!"), max_tokens=12)
    a = next(embedded_model.generate([req]))[1]
    b = next(embedded_model.generate([req]))[1]
    assert a.text.strip() and a.text == b.text
    assert a.prompt_tokens > 20 and 0 < a.completion_tokens <= 12


def test_max_tokens_is_a_ceiling_up_to_the_end_of_the_context_window(embedded_model) -> None:
    """A reply may ask for more tokens than the window has left (GEPA's reflections ask 4096 of a 4096-token model):
    it is generated and stops where it stops; only a prompt that fills the window is refused."""
    from prompthone.errors import BackendError

    short = GenerationRequest(_msgs("I love it, best purchase ever!"), max_tokens=12)
    ceiling = GenerationRequest(short.messages, max_tokens=5000)  # 5000 > 4096 - the prompt
    capped, whole = next(embedded_model.generate([short]))[1], next(embedded_model.generate([ceiling]))[1]
    assert whole.text.startswith(capped.text) and whole.finish_reason == "stop"
    with pytest.raises(BackendError, match="leaves no room"):
        next(embedded_model.generate([GenerationRequest((Message("user", "hi " * 5000),), max_tokens=8)]))


def test_label_scores_are_log_probabilities_and_sensible(embedded_model) -> None:
    reqs = [ScoringRequest(_msgs(r), ("positive", "negative"))
            for r in ("I absolutely love this, best purchase ever!", "Wonderful, works perfectly.")]
    for _, scores in embedded_model.score(reqs):
        assert all(math.isfinite(x) and x <= 0.0 for x in scores.logprobs)
        assert sum(math.exp(x) for x in scores.logprobs) <= 1.0 + 1e-6
        assert scores.logprobs[0] > scores.logprobs[1]


def test_prefix_reuse_gives_the_same_scores_as_a_fresh_evaluation(embedded_model) -> None:
    reviews = ["Great value.", "Awful, it broke.", "It was fine I guess.", "Great value."]
    reused = [s.logprobs for _, s in embedded_model.score([ScoringRequest(_msgs(r), ("positive", "negative"))
                                                            for r in reviews])]
    fresh = []
    for r in reviews:
        embedded_model._llm.n_tokens = 0  # forget the KV cache: full re-evaluation
        fresh.append(next(embedded_model.score([ScoringRequest(_msgs(r), ("positive", "negative"))]))[1].logprobs)
    for a, b in zip(reused, fresh, strict=True):
        assert a == pytest.approx(b, abs=1e-3)
    assert reused[0] == pytest.approx(reused[3], abs=1e-3)


@pytest.mark.parametrize(("review", "max_tokens"), [("Terrible. Broke after one day.", 6),
                                                    ("It is okay, nothing special.", 16)])
def test_generation_after_scoring_the_same_prompt_matches_a_cold_start(embedded_model, review: str,
                                                                       max_tokens: int) -> None:
    """Regression: scoring left a label variant's logits in the context and generate() sampled from them."""
    req = GenerationRequest(_msgs(review), max_tokens=max_tokens)
    embedded_model._llm.n_tokens = 0
    clean = next(embedded_model.generate([req]))[1].text
    next(embedded_model.score([ScoringRequest(req.messages, ("positive", "negative"))]))
    after = next(embedded_model.generate([req]))[1].text
    assert after == clean


def test_a_repeated_request_scores_exactly_as_a_fresh_one(embedded_model) -> None:
    """Regression: re-decoding only the last cached token took llama.cpp's single-token path (Δ up to 0.18)."""
    import prompthone as ph
    from prompthone.prompts.prompt import Prompt, render

    task = ph.load_task("examples/sentiment.jsonl")
    prompt = Prompt(task.instruction, output_format=task.output_format)
    worst = 0.0
    for example in task.dev[:8]:
        req = ScoringRequest(render(prompt, example.input), tuple(task.labels or ()))
        first = next(embedded_model.score([req]))[1].logprobs
        repeat = next(embedded_model.score([req]))[1].logprobs
        embedded_model._llm.n_tokens = 0
        fresh = next(embedded_model.score([req]))[1].logprobs
        worst = max(worst, *(abs(a - b) for a, b in zip(first, repeat, strict=True)),
                    *(abs(a - b) for a, b in zip(first, fresh, strict=True)))
    assert worst < 1e-6



def test_one_thread_and_two_give_the_same_scores_and_replies() -> None:
    """`$PROMPTHONE_THREADS` (and `make test`'s parallel workers) rely on this: llama.cpp splits each matrix product
    by rows, so the thread count changes the speed, never a score or a greedy reply."""
    from prompthone.models.llamacpp import load_embedded

    scoring = [ScoringRequest(messages=(Message("system", "Classify the sentiment of the review."),
                                        Message("user", f"Review {i}: the food was {word}.")),
                              continuations=("positive", "negative"))
               for i, word in enumerate(("great", "awful", "cold", "lovely"))]
    generation = [GenerationRequest(messages=(Message("user", "Write one sentence about the sea."),), max_tokens=24)]
    answers = []
    for threads in (1, 2):
        model = load_embedded(n_threads=threads)
        try:
            answers.append(([s.logprobs for _, s in model.score(scoring)],
                            [c.text for _, c in model.generate(generation)]))
        finally:
            model.close()
    assert answers[0] == answers[1]
