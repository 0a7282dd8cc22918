"""The one protocol every model backend implements, and the plain data that crosses it.

A backend declares what it can do in `capabilities` (Optuna-style: declared, never guessed). Every
request is a frozen dataclass with a canonical `payload()`, which is what the call cache hashes.
Batch methods yield `(index, result)` pairs as results arrive, so the evaluator can cache each one and
stop on a spent budget without waiting for the whole batch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    """One chat turn; `role` is 'system', 'user' or 'assistant'."""

    role: str
    content: str


def _messages_payload(messages: Sequence[Message]) -> list[list[str]]:
    return [[m.role, m.content] for m in messages]


def _with_prefill(payload: dict[str, Any], prefill: str) -> dict[str, Any]:
    # Only a non-empty prefill enters the payload, so every request made before prefills existed keeps its
    # cache key.
    if prefill:
        payload["prefill"] = prefill
    return payload


@dataclass(frozen=True)
class GenerationRequest:
    """Generate a reply to `messages`. Greedy when temperature is 0; `seed` makes sampling repeatable.

    `prefill` is the start of the assistant's reply, already written: the model continues it (only on
    backends whose `capabilities.prefill` is true). Two-stage answering uses it: reasoning, then an
    answer extractor, then the answer.
    """

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    prefill: str = ""

    def payload(self) -> dict[str, Any]:
        return _with_prefill({"kind": "generate", "messages": _messages_payload(self.messages),
                              "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                              "stop": list(self.stop), "seed": self.seed}, self.prefill)


@dataclass(frozen=True)
class ScoringRequest:
    """Score how likely each continuation is as the start of the assistant's reply to `messages`.

    Used for label scoring (continuations = the task's labels) without generating anything. With a
    `prefill`, the continuations are scored after it (the reply so far), e.g. after reasoning and an answer
    extractor.
    """

    messages: tuple[Message, ...]
    continuations: tuple[str, ...]
    prefill: str = ""

    def payload(self) -> dict[str, Any]:
        return _with_prefill({"kind": "score", "messages": _messages_payload(self.messages),
                              "continuations": list(self.continuations)}, self.prefill)


@dataclass(frozen=True)
class Completion:
    """A generated reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@dataclass(frozen=True)
class ContinuationScores:
    """log P(continuation | prompt) for each requested continuation, in request order.

    Each value sums the probability of the continuation's surface variants (case and a leading space:
    'yes', 'Yes', ' yes', ...), because a model may start its answer with any of them.
    """

    logprobs: tuple[float, ...]
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    `score`: continuation log-probabilities; `white_box`: torch internals (`WhiteBox`); `prefill`: continues a
    partly written assistant reply (`GenerationRequest.prefill`); `max_concurrency`: requests worth sending
    at once (a thread pool for servers, a batch for torch).
    """

    generate: bool = True
    score: bool = False
    white_box: bool = False
    prefill: bool = False
    max_concurrency: int = 1


@runtime_checkable
class Model(Protocol):
    """A language model backend. `id` identifies weights and settings that change outputs (cache key)."""

    id: str
    capabilities: Capabilities

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield (index into `requests`, completion) as each finishes, in any order."""
        ...

    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        """Yield (index, scores) as each finishes. Only when `capabilities.score` is true."""
        ...

    def close(self) -> None:
        """Release processes, connections and memory."""
        ...


@runtime_checkable
class WhiteBox(Protocol):
    """A model whose tokens, embeddings and forward pass are open (torch): what gradient methods need.

    Declared by `capabilities.white_box`. Tensors are torch tensors; they are typed `Any` here so that the
    core install does not import torch.
    """

    tokenizer: Any
    module: Any
    device: Any

    def render_chat(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The exact text the chat template makes of `messages` with the generation prompt and `prefill`."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text (special tokens parsed, nothing added)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (special tokens dropped)."""
        ...

    @property
    def embedding_matrix(self) -> Any:
        """The input embedding matrix (vocab × hidden)."""
        ...

    def logits(self, *, input_ids: Any = None, inputs_embeds: Any = None, attention_mask: Any = None,
               positions: Any = None) -> Any:
        """Next-token logits from token ids or input embeddings, at every position or at (rows, columns)."""
        ...


@dataclass
class ModelInfo:
    """What `prompthone models` prints about a backend."""

    spec: str
    description: str
    capabilities: Capabilities = field(default_factory=Capabilities)


#: A label variant whose first token is this far (in nats) below the best first token adds < e^-12 ≈ 6e-6 of its
#: probability: backends skip evaluating its remaining tokens (the same rule in every backend that scores).
PRUNE_NATS = 12.0


def surface_variants(text: str) -> tuple[str, ...]:
    """The ways a model may write `text` at the start of a reply: case variants, with and without a leading space.

    As written, lower case and Capitalized. ALL-CAPS is left out: it splits into several tokens (each
    costing a decode) and held 0.16% of a label's mass on average (max 0.4%) over 40 examples of two tasks
    with SmolLM2. Order is stable and duplicates are removed, so backends tokenize each distinct form once.
    """
    core = text.strip()
    forms = [core, core.lower(), core[:1].upper() + core[1:]]
    seen: dict[str, None] = {}
    for form in forms:
        for variant in (form, " " + form):
            seen.setdefault(variant, None)
    return tuple(seen)


def logsumexp(values: Iterable[float]) -> float:
    """log(Σ exp(v)) computed stably; -inf for no values or all -inf (how variant probabilities add up)."""
    items = list(values)
    top = max(items, default=-math.inf)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in items))


def file_fingerprint(path: Path) -> str:
    """A cheap identity for weights: size plus a hash of the first and last MiB (part of backend ids)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]
