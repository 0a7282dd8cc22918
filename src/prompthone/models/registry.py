"""Model specs → backends, in this process: `make_model("gguf:<path>")`, and what `prompthone models` lists.

The spec forms themselves ('local', 'gguf:<path>', 'local-torch', 'torch:<path>', 'adapter:<dir>', 'openai:<url>')
are parsed by `spec.ModelSpec`. Whether a model runs here or on Ray workers is chosen in one place,
`prompthone.api.executor_model`; a `RayModel` is built from a spec directly. `load_adapter_model` (a trained augmenter
on its base GGUF) is importable from here too.
"""

from __future__ import annotations

from prompthone.models.base import Model, ModelInfo
from prompthone.models.spec import EMBEDDED_KINDS, SPEC_FORMS, ModelSpec, SpecForm
from prompthone.models.torch_model import load_adapter_model

__all__ = ["DEFAULT_MODEL", "available_models", "load_adapter_model", "make_model"]

DEFAULT_MODEL = "local"


def make_model(spec: str | ModelSpec = DEFAULT_MODEL, *, threads: int | None = None) -> Model:
    """Build the backend `spec` names, in this process (see `ModelSpec.build` for the forms).

    `threads`: CPU threads of an in-process llama.cpp backend (default: every core). To run a spec on Ray workers,
    build `RayModel(spec, RayExecutor(...))`, or pass `executor=` to `optimize`/`evaluate`.
    """
    return ModelSpec.parse(spec).build(threads=threads)


def available_models() -> list[ModelInfo]:
    """What `prompthone models` lists: each backend spec form with the capabilities its class declares, and for each
    embedded model (`local`, `qwen-0.5b`, `qwen-1.5b`) whether it is installed and assembled."""
    return [ModelInfo(form.shown, _description(form), form.capabilities()) for form in SPEC_FORMS]


def _description(form: SpecForm) -> str:
    if form.kind not in EMBEDDED_KINDS:
        return form.description
    from prompthone.models.embedded import embedded_model, installed_status

    return f"{form.description} — {installed_status(embedded_model(form.kind))}"
