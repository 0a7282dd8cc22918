"""Shared fixtures: one embedded model per test session (loading it costs ~1.5 s), isolated caches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs `-n auto`), each worker computes with its share of the cores: two model
    processes that each take every core run several times slower than one after the other, while one thread each
    gives the same results (`prompthone.models.threads`) and lets the other worker's Python run meanwhile. Set here,
    before any test module imports torch, and inherited by every subprocess a test starts (CLI, server, Ray)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("PROMPTHONE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # xdist gives its workers COLUMNS=80 and LINES=24, which rich's consoles (made at import) would keep for
        # good, so a test's own `COLUMNS` for one command would not widen them; a serial run has neither.
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under `CI=true` a skipped test is a failed one: a missing extra, model or server must never let the suite
    pass on evidence it did not gather (`importorskip` and `skip` anywhere in the suite included; xfail is left
    alone). Tests that should not run in CI are deselected by marker instead (pyproject's addopts)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI", "").lower() == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must not skip (install what it needs): {reason}"


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
