"""The fixed category set of PAS's data (§3.1) and the two ways to assign one to a prompt.

Complements are generated few-shot *per category* (a coding prompt gets coding-style guidance), so every prompt
needs one. `classify_by_embedding` (the default) is zero-shot nearest-centroid over the category descriptions and
our golden prompts in MiniLM space: cheap, deterministic, and usable with any generator. `classify_by_llm` asks a
model to pick a category by label log-probabilities, as the paper does with its LLM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prompthone.errors import ConfigError
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Message, ScoringRequest

#: name → what belongs there (documented in docs/pas.md; the descriptions are also the classifier's anchors).
CATEGORIES: dict[str, str] = {
    "qa": "a factual or open knowledge question that asks for an explanation or a fact",
    "coding": "writing, reading, tracing or fixing computer code and programs",
    "writing": "creative or professional writing: stories, poems, emails, essays, letters",
    "translation": "translating text from one language into another",
    "math": "arithmetic, algebra, word problems and numerical calculation",
    "extraction": "pulling specific items (names, dates, numbers, entities) out of a given text",
    "reasoning": "logic puzzles, deduction, commonsense and causal reasoning, multi-step inference",
    "classification": "choosing a label or option for an input: sentiment, topic, true or false, multiple choice",
    "dialogue": "chatting, personal conversation, advice and emotional support",
    "rewrite": "rewriting, paraphrasing, correcting or changing the style of a given text",
    "summarization": "summarizing or condensing a passage or listing its key points",
    "brainstorming": "generating ideas, names, suggestions or plans",
}


def category_centroids(embedder: Any, golden_prompts: Mapping[str, Sequence[str]]) -> tuple[list[str], Any]:
    """One unit vector per category: the mean of its description's and its golden prompts' embeddings."""
    numpy = __import__("numpy")
    names = list(CATEGORIES)
    rows = []
    for name in names:
        texts = [f"{name}: {CATEGORIES[name]}", *golden_prompts.get(name, ())]
        mean = embedder.encode(texts).mean(axis=0)
        rows.append(mean / numpy.linalg.norm(mean))
    return names, numpy.stack(rows).astype("float32")


def classify_by_embedding(vectors: Any, names: Sequence[str], centroids: Any) -> list[tuple[str, float]]:
    """(category, cosine similarity) of the nearest centroid for each unit vector."""
    similarities = vectors @ centroids.T
    best = similarities.argmax(axis=1)
    return [(names[int(b)], round(float(similarities[i, b]), 4)) for i, b in enumerate(best)]


CLASSIFY_SYSTEM = "You sort user requests into categories. Reply with the category name only."


def _classify_messages(prompt: str) -> tuple[Message, ...]:
    listing = "\n".join(f"- {name}: {description}" for name, description in CATEGORIES.items())
    user = f"Categories:\n{listing}\n\nRequest:\n{prompt.strip()}\n\nWhich category fits the request best?"
    return (Message("system", CLASSIFY_SYSTEM), Message("user", user))


def classify_by_llm(model: MeteredModel, prompts: Sequence[str]) -> list[tuple[str, float]]:
    """(category, its normalised probability) by scoring each category name as the model's reply."""
    import math

    if not model.model.capabilities.score:
        raise ConfigError(f"{model.id} cannot score labels; use the embedding classifier (--classifier embedding)")
    names = tuple(CATEGORIES)
    results = model.score([ScoringRequest(_classify_messages(p), names) for p in prompts])
    out = []
    for scores in results:
        top = max(scores.logprobs)
        weights = [math.exp(v - top) for v in scores.logprobs]
        best = max(range(len(names)), key=lambda i: weights[i])
        out.append((names[best], round(weights[best] / sum(weights), 4)))
    return out
