"""Shared fixtures: one embedded model per test session (loading it costs ~1.5 s), isolated caches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def embedded_model() -> Iterator[Any]:
    """SmolLM2-135M-Instruct on llama.cpp, shared by the e2e tests."""
    pytest.importorskip("llama_cpp")
    from prompthone.models.llamacpp import load_embedded

    model = load_embedded()
    yield model
    model.close()


@pytest.fixture(scope="session")
def torch_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The per-session cache root of the dequantized torch weights (made once, ~40 s; every torch test reuses it)."""
    return tmp_path_factory.mktemp("torch-weights")


@pytest.fixture(scope="session")
def torch_model(torch_cache_root: Path) -> Iterator[Any]:
    """SmolLM2-135M-Instruct dequantized into torch (white-box), from a per-session copy of its weights."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from prompthone.models.torch_model import load_embedded_torch

    model = load_embedded_torch(cache_root=torch_cache_root)
    yield model
    model.close()


@pytest.fixture(autouse=True)
def _isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's real call cache from tests."""
    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def fake_instruction_model(model_id: str) -> Any:
    """A scripted instruction-writing model (tests/optimizers/test_checkpoint_resume.py) under another id."""
    from tests.optimizers.test_checkpoint_resume import InstructionModel

    model = InstructionModel()
    model.id = model_id
    return model


@pytest.fixture
def embedded_fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The embedded model specs built as scripted fakes, with qwen-1.5b the strongest embedded model installed
    (what `api.default_meta_model` picks for an embedded task model)."""
    import prompthone.api as api
    import prompthone.models.embedded as embedded

    models = {spec: fake_instruction_model(f"fake:{spec}") for spec in ("local", "qwen-1.5b", "qwen-0.5b")}
    monkeypatch.setattr(embedded, "strongest_installed_embedded", lambda: "qwen-1.5b")
    monkeypatch.setattr(api, "make_model", lambda spec: models[spec])
    monkeypatch.setattr(api, "_LOADED", {})
    return models
